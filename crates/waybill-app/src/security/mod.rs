//! Security: who is calling, and what they may do.

mod principal;

pub use principal::Principal;

/// The scope of a token carrying its user's full rights.
pub const ADMIN_SCOPE: &str = "applied-permissions/admin";
/// The scope of a token acting as a plain user, even for an admin.
pub const USER_SCOPE: &str = "applied-permissions/user";
