//! Passwords: the rule a new one must meet, and argon2id hashing.
//!
//! Hashes are PHC strings with the crate's default parameters (argon2id,
//! 19 MiB, two passes, one lane — OWASP's first recommendation); the
//! parameters travel in the string, so raising them later still verifies
//! old hashes. Hashing costs tens of milliseconds of CPU on purpose, so the
//! async callers run it on the blocking pool.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};

/// NIST SP 800-63B: at least 8 characters; the upper bound only keeps a
/// request from making the server hash megabytes.
pub const MIN_CHARS: usize = 8;
pub const MAX_CHARS: usize = 256;

/// Why a new password is refused.
pub fn check(name: &str, password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(format!("a password has at least {MIN_CHARS} characters; this one has {chars}"));
    }
    if chars > MAX_CHARS {
        return Err(format!("a password has at most {MAX_CHARS} characters"));
    }
    if password.trim().eq_ignore_ascii_case(name.trim()) {
        return Err("the password must not be the user name".into());
    }
    Ok(())
}

/// The PHC string of a password, with a fresh random salt.
pub fn hash(password: &str) -> Result<String, String> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC string; a string that is not one
/// matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
}

/// Spends the time of one verification without a user: a sign-in with an
/// unknown name takes as long as one with a wrong password, so timing does
/// not tell which names exist.
pub fn verify_nothing(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("enms-dummy-password").unwrap_or_default());
    let _ = verify(password, phc);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash("correct horse battery").expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("correct horse battery", &phc));
        assert!(!verify("correct horse batterz", &phc));
        assert!(!verify("correct horse battery", "not a phc string"));
        assert_ne!(phc, hash("correct horse battery").expect("hash"), "each hash has its own salt");
    }

    #[test]
    fn hashes_of_the_reference_implementation_verify() {
        // From the argon2 reference CLI: `echo -n password | argon2 somesalt -id -t 2 -m 16 -p 1`.
        let reference = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        assert!(verify("password", reference));
        assert!(!verify("Password", reference));
    }

    #[test]
    fn new_passwords_are_checked() {
        assert!(check("ada", "short").is_err());
        assert!(check("adalovelace", "AdaLovelace").is_err());
        assert!(check("ada", &"x".repeat(257)).is_err());
        assert!(check("ada", "analytical engine").is_ok());
    }
}
