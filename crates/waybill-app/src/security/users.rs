//! Users, access tokens and login lockouts: the use-cases behind the
//! security APIs. Passwords are argon2id hashes and never leave the server;
//! refresh tokens are stored only as their SHA-256.

use waybill_core::auth::{PasswordHash, TokenRecord, User};

use super::tokens::Tokens;
use super::{ADMIN_SCOPE, Security, USER_SCOPE};
use crate::{Error, Principal};

/// A new token and what it carries.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// The access token (a JWT).
    pub access: String,
    /// The single-use refresh token, when one was asked for.
    pub refresh: Option<String>,
    /// Seconds until the access token expires; 0 for never.
    pub expires_in: u64,
    /// The token's scope.
    pub scope: String,
    /// The token's id.
    pub token_id: String,
}

/// A token named by its text or its id.
#[derive(Clone, Debug)]
pub enum TokenRef {
    /// The access token itself.
    Token(String),
    /// Its id (`jti`).
    Id(String),
}

/// What a user write changes; `None` keeps the stored value.
#[derive(Clone, Debug, Default)]
pub struct UserChange {
    /// The name the body states, if any; it must equal the addressed one.
    pub body_name: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// A new password (required for a new user).
    pub password: Option<String>,
    /// Administrator rights.
    pub admin: Option<bool>,
    /// Group memberships.
    pub groups: Option<Vec<String>>,
}

impl Security {
    /// Issues an access token for `username` (the caller, or anyone for an
    /// admin), with `scope` (the user scope when `None`); `lifetime` reads
    /// the expiry in seconds and whether a refresh token is wanted, once the
    /// caller is authorized.
    pub async fn issue_token(
        &self,
        who: &Principal,
        username: Option<&str>,
        scope: Option<&str>,
        lifetime: impl FnOnce() -> Result<(u64, bool), Error>,
    ) -> Result<IssuedToken, Error> {
        let username = username
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Error::invalid("username is required"))?;
        if username != who.name && !who.admin {
            return Err(Error::forbidden(format!(
                "user '{}' may create tokens only for itself",
                who.name
            )));
        }
        let user = self
            .store
            .get_user(username)
            .await?
            .ok_or_else(|| Error::invalid(format!("user '{username}' does not exist")))?;
        let scope = scope.filter(|s| !s.is_empty()).unwrap_or(USER_SCOPE);
        match scope {
            USER_SCOPE => {}
            ADMIN_SCOPE if who.admin && user.admin => {}
            ADMIN_SCOPE => {
                return Err(Error::forbidden(format!(
                    "scope {ADMIN_SCOPE} needs an administrator, for an administrator"
                )));
            }
            other => {
                return Err(Error::invalid(format!(
                    "scope '{other}' is not one of {ADMIN_SCOPE}, {USER_SCOPE}"
                )));
            }
        }
        let (expires_in, refreshable) = lifetime()?;
        let (access, refresh, record) = self
            .tokens
            .issue(
                self.store.as_ref(),
                self.service_id.as_str(),
                &user.name,
                scope,
                expires_in,
                refreshable,
            )
            .await?;
        tracing::info!(subject = %user.name, token_id = %record.token_id, "access token issued");
        Ok(IssuedToken {
            access,
            refresh,
            expires_in,
            scope: scope.to_string(),
            token_id: record.token_id,
        })
    }

    /// Replaces a refreshable token by a new one with the same subject and
    /// scope; the old token and its refresh token die here. `lifetime` is
    /// read before anything is deleted, so a bad one costs the caller nothing.
    pub async fn refresh_token(
        &self,
        who: &Principal,
        access: &str,
        refresh: &str,
        lifetime: impl FnOnce() -> Result<(u64, bool), Error>,
    ) -> Result<IssuedToken, Error> {
        let store = self.store.as_ref();
        let claims = self
            .tokens
            .decode(store, access)
            .await
            .map_err(|_| Error::invalid("access_token is not a token of this server"))?;
        let record = store
            .get_token(&claims.jti)
            .await?
            .filter(|r| !r.revoked && Tokens::refresh_matches(r, refresh))
            .ok_or_else(|| {
                Error::invalid("the refresh token does not match a live refreshable token")
            })?;
        if record.subject != who.name && !who.admin {
            return Err(Error::forbidden(format!(
                "user '{}' may refresh only its own tokens",
                who.name
            )));
        }
        let (expires_in, refreshable) = lifetime()?;
        let _changed = self.change();
        store.delete_token(&record.token_id).await?;
        let (access, refresh, fresh) = self
            .tokens
            .issue(
                store,
                self.service_id.as_str(),
                &record.subject,
                &record.scope,
                expires_in,
                refreshable,
            )
            .await?;
        Ok(IssuedToken {
            access,
            refresh,
            expires_in,
            scope: record.scope,
            token_id: fresh.token_id,
        })
    }

    /// Revokes a token (admin only); it stops working on the next request.
    /// `which` names it, read once the caller is authorized.
    pub async fn revoke_token(
        &self,
        who: &Principal,
        which: impl FnOnce() -> Result<TokenRef, Error>,
    ) -> Result<(), Error> {
        who.require_admin()?;
        let token_id = match which()? {
            TokenRef::Id(id) => id,
            TokenRef::Token(t) => {
                self.tokens
                    .decode(self.store.as_ref(), &t)
                    .await
                    .map_err(|_| Error::not_found("token not found"))?
                    .jti
            }
        };
        let mut record = self
            .store
            .get_token(&token_id)
            .await?
            .ok_or_else(|| Error::not_found("token not found"))?;
        record.revoked = true;
        let _changed = self.change();
        self.store.put_token(record).await?;
        tracing::info!(%token_id, "access token revoked");
        Ok(())
    }

    /// The live tokens (admin only).
    pub async fn list_tokens(&self, who: &Principal) -> Result<Vec<TokenRecord>, Error> {
        who.require_admin()?;
        Ok(self
            .store
            .list_tokens()
            .await?
            .into_iter()
            .filter(|t| !t.revoked)
            .collect())
    }

    /// Every user (admin only).
    pub async fn list_users(&self, who: &Principal) -> Result<Vec<User>, Error> {
        who.require_admin()?;
        Ok(self.store.list_users().await?)
    }

    /// User `name` (admin only).
    pub async fn get_user(&self, who: &Principal, name: &str) -> Result<User, Error> {
        who.require_admin()?;
        self.store
            .get_user(name)
            .await?
            .ok_or_else(|| Error::not_found(format!("user '{name}' does not exist")))
    }

    /// Creates or updates user `name` (admin only); true when created.
    pub async fn put_user(
        &self,
        who: &Principal,
        name: &str,
        change: UserChange,
    ) -> Result<(User, bool), Error> {
        who.require_admin()?;
        let _changed = self.change();
        User::validate_name(name)?;
        if change.body_name.as_deref().is_some_and(|n| n != name) {
            return Err(Error::invalid("the body's name differs from the URL's"));
        }
        let existing = self.store.get_user(name).await?;
        let hash = match change.password {
            Some(p) if p.chars().count() < 8 => {
                return Err(Error::invalid("password must be at least 8 characters"));
            }
            Some(p) => {
                let mut salt = [0u8; 16];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
                    .map_err(|_| Error::internal("the OS random source failed"))?;
                tokio::task::spawn_blocking(move || PasswordHash::create(&p, salt))
                    .await
                    .map_err(|_| Error::internal("hashing failed"))??
            }
            None => match &existing {
                Some(u) => u.password_hash.clone(),
                None => return Err(Error::invalid("password is required for a new user")),
            },
        };
        let created = existing.is_none();
        let base = existing.unwrap_or(User {
            name: name.to_string(),
            password_hash: hash.clone(),
            admin: false,
            email: None,
            groups: vec![],
            created: self.clock.now_millis(),
        });
        let user = User {
            password_hash: hash,
            admin: change.admin.unwrap_or(base.admin),
            email: change.email.or(base.email),
            groups: change.groups.unwrap_or(base.groups),
            ..base
        };
        if !created && !user.admin && name == who.name {
            return Err(Error::invalid(
                "administrators cannot remove their own admin rights",
            ));
        }
        self.store.put_user(user.clone()).await?;
        Ok((user, created))
    }

    /// Deletes user `name` with their tokens and API key (admin only).
    pub async fn delete_user(&self, who: &Principal, name: &str) -> Result<(), Error> {
        who.require_admin()?;
        let _changed = self.change();
        if name == who.name {
            return Err(Error::invalid("administrators cannot delete themselves"));
        }
        if !self.store.delete_user(name).await? {
            return Err(Error::not_found(format!("user '{name}' does not exist")));
        }
        for t in self
            .store
            .list_tokens()
            .await?
            .into_iter()
            .filter(|t| t.subject == name)
        {
            self.store.delete_token(&t.token_id).await?;
        }
        // A later user of the same name must not inherit the key.
        self.revoke_key_of(name).await?;
        Ok(())
    }

    /// The user names refused now after failed logins (admin only).
    pub fn locked_users_for(&self, who: &Principal) -> Result<Vec<String>, Error> {
        who.require_admin()?;
        Ok(self.locked_users())
    }

    /// Lifts a user's login lockout at once (admin only); true if they were locked.
    pub async fn unlock_user(&self, who: &Principal, name: &str) -> Result<bool, Error> {
        who.require_admin()?;
        User::validate_name(name)?;
        let was_locked = self.unlock(name).await?;
        tracing::info!(user = %name, by = %who.name, was_locked, "login lockout lifted");
        Ok(was_locked)
    }
}
