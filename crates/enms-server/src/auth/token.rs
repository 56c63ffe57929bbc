//! Token secrets: how they are made and the hash the store keeps.
//!
//! A token is `enms_` followed by 64 hex digits from two v4 UUIDs (244
//! random bits from the operating system's generator). With that much
//! entropy a plain SHA-256 is enough to store it safely: there is nothing to
//! guess that a slow password hash would protect.

use sha2::{Digest, Sha256};

pub const PREFIX: &str = "enms_";

/// A new random token.
pub fn generate() -> String {
    format!("{PREFIX}{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// The hex SHA-256 of a token, as stored.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hash_to_64_hex_digits() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert_eq!(a.len(), PREFIX.len() + 64);
        assert_eq!(hash(&a).len(), 64);
        assert_eq!(hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
