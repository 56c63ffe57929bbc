//! Bearer secrets — API tokens and session tokens — and the hash the store
//! keeps of them.
//!
//! A secret is a prefix followed by 64 hex digits from two v4 UUIDs (244
//! random bits from the operating system's generator). With that much
//! entropy a plain SHA-256 is enough to store it safely: there is nothing
//! to guess that a slow password hash would protect (passwords, which
//! people choose, get argon2id in [`crate::password`]).

use sha2::{Digest, Sha256};

/// A new random secret: `prefix` and 64 hex digits.
pub fn generate(prefix: &str) -> String {
    format!("{prefix}{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// The hex SHA-256 of a secret, as stored.
pub fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_unique_and_hash_to_64_hex_digits() {
        let (a, b) = (generate("x_"), generate("x_"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 2 + 64);
        assert_eq!(hash(&a).len(), 64);
        assert_eq!(hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
