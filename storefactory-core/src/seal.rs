//! Sealing: values that must survive a restart but may not sit in the database in plain text
//! (a password chosen at creation, kept until it is written to the store's Secret).
//!
//! Values are sealed with ChaCha20-Poly1305 under a key derived (HKDF-SHA256) from a secret
//! the operator provides, and bound to the store they belong to: a sealed value copied to
//! another store's record does not open. With the secret from a file or a Kubernetes Secret,
//! a copy of the database alone reveals nothing.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// Domain separation of the derived key: the same operator secret also signs tokens.
const INFO: &[u8] = b"storefactory sealed store inputs v1";
const NONCE_LEN: usize = 12;

/// The key values are sealed with. Debug output hides it.
#[derive(Clone)]
pub struct SealingKey(Key);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

/// A sealed value did not open: another key sealed it, or it was altered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sealed value cannot be opened (sealed under another key, or altered)")]
pub struct OpenError;

impl SealingKey {
    /// The key derived from an operator's secret (at least 32 bytes are advised).
    pub fn derive(secret: &[u8]) -> Self {
        let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(None, secret);
        let mut key = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit of 8160, so expanding cannot fail.
        let _ = hkdf.expand(INFO, &mut key);
        SealingKey(Key::from(key))
    }

    /// A random key, for a process whose sealed values need not outlive it.
    pub fn random() -> Self {
        SealingKey(ChaCha20Poly1305::generate_key(&mut OsRng))
    }

    /// Seals `plaintext` for `context` (the store id): base64 of nonce and ciphertext.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> String {
        let cipher = ChaCha20Poly1305::new(&self.0);
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plaintext,
            aad: context.as_bytes(),
        };
        // Encryption of an in-memory buffer with a valid key and nonce does not fail.
        let ciphertext = cipher.encrypt(&nonce, payload).unwrap_or_default();
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        base64::engine::general_purpose::STANDARD.encode(sealed)
    }

    /// Opens what [`SealingKey::seal`] sealed for the same `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, OpenError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| OpenError)?;
        if bytes.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        ChaCha20Poly1305::new(&self.0)
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_store() {
        let key = SealingKey::derive(b"an operator secret of enough length!");
        let sealed = key.seal("ab12", b"chosen password");
        assert!(!sealed.contains("chosen"));
        assert_eq!(key.open("ab12", &sealed).unwrap(), b"chosen password");
        assert_eq!(key.open("cd34", &sealed), Err(OpenError));
        let other = SealingKey::derive(b"another operator secret, also long");
        assert_eq!(other.open("ab12", &sealed), Err(OpenError));
        assert_eq!(key.open("ab12", "not base64!"), Err(OpenError));
        let mut tampered = base64::engine::general_purpose::STANDARD
            .decode(&sealed)
            .unwrap();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let tampered = base64::engine::general_purpose::STANDARD.encode(tampered);
        assert_eq!(key.open("ab12", &tampered), Err(OpenError));
        // The same secret derives the same key in another process.
        let again = SealingKey::derive(b"an operator secret of enough length!");
        assert_eq!(again.open("ab12", &sealed).unwrap(), b"chosen password");
        assert_ne!(key.seal("ab12", b"x"), key.seal("ab12", b"x"));
    }
}
