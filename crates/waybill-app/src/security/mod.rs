//! Security: who is calling, and what they may do: authentication with
//! lockouts, the authorization checks every use-case makes, and the users,
//! groups, permissions, tokens and API keys behind them.

mod apikeys;
mod authenticate;
mod authz;
mod principal;
pub mod tokens;
mod users;

pub use authenticate::{Credentials, Security};
pub use authz::{GroupView, Patterns, PermissionRequest};
pub use principal::Principal;
pub use users::{IssuedToken, TokenRef, UserChange};

/// The scope of a token carrying its user's full rights.
pub const ADMIN_SCOPE: &str = "applied-permissions/admin";
/// The scope of a token acting as a plain user, even for an admin.
pub const USER_SCOPE: &str = "applied-permissions/user";
