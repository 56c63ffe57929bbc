//! API token secrets: `enms_` and 64 hex digits, hashed with SHA-256 for
//! the store (the reasoning is in `enms_accounts::secret`, which makes
//! session secrets the same way).

pub const PREFIX: &str = "enms_";

/// A new random token.
pub fn generate() -> String {
    enms_accounts::secret::generate(PREFIX)
}

pub use enms_accounts::secret::hash;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_not_session_secrets() {
        let token = generate();
        assert_eq!(token.len(), PREFIX.len() + 64);
        assert!(!token.starts_with(enms_accounts::SESSION_PREFIX), "the guard tells them apart by prefix");
    }
}
