//! The authenticated caller, as every use-case receives it.

use waybill_core::auth::User;

use crate::Error;

/// Who is calling, as proved by a credential.
#[derive(Clone, Debug)]
pub struct Principal {
    /// User name.
    pub name: String,
    /// Whether the user is an administrator.
    pub admin: bool,
    /// Groups the user belongs to.
    pub groups: Vec<String>,
    /// Authenticated by a token whose scope is narrower than the user's
    /// rights (an admin's `applied-permissions/user` token). Such a caller
    /// may not mint credentials, which would carry the full rights.
    pub reduced: bool,
}

impl Principal {
    /// A user acting with their full rights (password or API key).
    pub fn of(user: User) -> Principal {
        Principal {
            name: user.name,
            admin: user.admin,
            groups: user.groups,
            reduced: false,
        }
    }

    /// The caller as the permission model sees it.
    pub fn caller(&self) -> waybill_core::permissions::Caller<'_> {
        waybill_core::permissions::Caller {
            name: &self.name,
            groups: &self.groups,
            admin: self.admin,
        }
    }

    /// Forbidden for a scope-reduced caller: anything that mints or revokes
    /// a credential needs the user's full rights.
    pub fn require_full_rights(&self, what: &str) -> Result<(), Error> {
        if self.reduced {
            return Err(Error::forbidden(format!(
                "{what} needs the user's full rights; this token's scope is narrower \
                 (use the password, or a token with scope {})",
                super::ADMIN_SCOPE
            )));
        }
        Ok(())
    }

    /// Forbidden unless the caller is an administrator.
    pub fn require_admin(&self) -> Result<(), Error> {
        if self.admin {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "user '{}' is not an administrator; this endpoint is admin only",
                self.name
            )))
        }
    }
}
