//! Password hashing: Argon2id with the parameters OWASP recommends.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{Error, Result};

/// Memory cost in KiB (19 MiB), time cost and parallelism: OWASP's Password Storage Cheat
/// Sheet's first recommended configuration for Argon2id.
const M_COST_KIB: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

/// Shortest and longest accepted password, in characters. The upper bound keeps a request
/// from buying minutes of hashing with a megabyte-long password.
pub(crate) const MIN_PASSWORD_CHARS: usize = 8;
const MAX_PASSWORD_CHARS: usize = 1024;

/// Verified in place of a real hash when the user does not exist, so that the answer takes
/// as long as for a user with a wrong password. Same algorithm and parameters as
/// [`hash`] produces; its digest was drawn at random, so no known password matches it.
pub(crate) const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$\
    2y8cr3g8vtPp2bn5eqAxhQ$D7rK1/Qo8FWyQp5rMzW8V6o0Ho0RMlQ8bU5J0r4Xv2c";

fn hasher() -> Argon2<'static> {
    // The constants are valid parameters; `Params::new` only fails for out-of-range ones.
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks a new password against the rules.
pub(crate) fn check(password: &str) -> Result<()> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(Error::InvalidPassword {
            reason: "shorter than 8 characters",
        });
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(Error::InvalidPassword {
            reason: "longer than 1024 characters",
        });
    }
    Ok(())
}

/// The PHC string (`$argon2id$v=19$m=...`) of `password` with a fresh random salt.
pub(crate) fn hash(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::HashPassword {
            message: e.to_string(),
        })
}

/// Whether `password` matches the PHC string `phc`. The parameters come from `phc`, so
/// hashes made with older parameters keep working. Comparison is constant-time.
pub(crate) fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters_and_salted() {
        let a = hash("correct horse").unwrap();
        let b = hash("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify("correct horse", &a));
        assert!(verify("correct horse", &b));
        assert!(!verify("correct horsE", &a));
        assert!(!verify("", &a));
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_costs() {
        let dummy = PasswordHash::new(DUMMY_HASH).expect("dummy hash parses");
        let real_text = hash("whatever-password").unwrap();
        let real = PasswordHash::new(&real_text).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        assert_eq!(dummy.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
        assert!(!verify("", DUMMY_HASH));
    }

    #[test]
    fn an_unparsable_hash_matches_nothing() {
        assert!(!verify("anything", "not a phc string"));
        assert!(!verify("anything", ""));
    }

    #[test]
    fn password_rules() {
        assert!(check("1234567").is_err());
        assert!(check("12345678").is_ok());
        assert!(
            check("ééééééé").is_err(),
            "counted in characters, not bytes"
        );
        assert!(check(&"x".repeat(1024)).is_ok());
        assert!(check(&"x".repeat(1025)).is_err());
    }
}
