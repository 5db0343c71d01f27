//! The random values of the authorization-code flow, drawn from the operating system's random
//! source: the PKCE code verifier and its S256 challenge ([RFC 7636]), and the `state` that ties
//! a callback to the authorization request that caused it ([RFC 6749 §10.12]).
//!
//! [RFC 7636]: https://www.rfc-editor.org/rfc/rfc7636
//! [RFC 6749 §10.12]: https://www.rfc-editor.org/rfc/rfc6749#section-10.12

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::{ConfigError, Error, ErrorKind};

/// The characters a verifier may hold: RFC 7636 §4.1's `unreserved`.
const UNRESERVED: &[u8; 66] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

/// The characters the verifiers we make hold: Infobip's documented alphabet, "A-Z, a-z, 0-9,
/// and the punctuation characters -.~" (no `_`), which lies inside RFC 7636's.
const GENERATED: &[u8; 65] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.~";

/// RFC 7636 §4.1: a verifier is 43 to 128 characters long.
pub(crate) const MIN_VERIFIER_LEN: usize = 43;
/// See [`MIN_VERIFIER_LEN`].
pub(crate) const MAX_VERIFIER_LEN: usize = 128;

/// The length of the verifiers we make: 64 characters of a 65-letter alphabet carry about 385
/// bits, well past RFC 7636's recommended 256.
pub(crate) const VERIFIER_LEN: usize = 64;

/// Random bytes in a generated `state`: 256 bits, twice RFC 6749's minimum of 128.
const STATE_BYTES: usize = 32;

/// A new PKCE code verifier of `len` characters (clamped to 43..=128), each drawn uniformly from
/// Infobip's documented verifier alphabet.
pub(crate) fn verifier(len: usize) -> Result<Zeroizing<String>, Error> {
    let len = len.clamp(MIN_VERIFIER_LEN, MAX_VERIFIER_LEN);
    let mut out = Zeroizing::new(String::with_capacity(len));
    let mut bytes = Zeroizing::new([0u8; 64]);
    while out.len() < len {
        fill(&mut bytes[..])?;
        // 195 = 3 × 65: bytes at or above it are dropped so every letter is equally likely.
        for &byte in bytes.iter().filter(|&&b| b < 195) {
            if out.len() == len {
                break;
            }
            out.push(char::from(GENERATED[usize::from(byte % 65)]));
        }
    }
    Ok(out)
}

/// The S256 challenge of `verifier`: BASE64URL without padding of its SHA-256 (RFC 7636 §4.2).
pub(crate) fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` has RFC 7636's length and alphabet.
pub(crate) fn is_verifier(verifier: &str) -> bool {
    (MIN_VERIFIER_LEN..=MAX_VERIFIER_LEN).contains(&verifier.len())
        && verifier.bytes().all(|b| UNRESERVED.contains(&b))
}

/// A new `state`: 256 random bits, BASE64URL without padding (43 characters).
pub(crate) fn state() -> Result<Zeroizing<String>, Error> {
    let mut bytes = Zeroizing::new([0u8; STATE_BYTES]);
    fill(&mut bytes[..])?;
    Ok(Zeroizing::new(URL_SAFE_NO_PAD.encode(&bytes[..])))
}

/// Fills `buf` from the operating system's random source.
fn fill(buf: &mut [u8]) -> Result<(), Error> {
    OsRng.try_fill_bytes(buf).map_err(|err| {
        Error::new(ErrorKind::Config(ConfigError::Invalid {
            what: "random source",
            reason: "the operating system's random number generator failed",
        }))
        .with_source(err)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn challenge_matches_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(is_verifier(verifier));
        assert_eq!(
            challenge(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn the_default_verifier_is_valid() -> Result<(), Error> {
        let made = verifier(VERIFIER_LEN)?;
        assert_eq!(made.len(), VERIFIER_LEN);
        assert!(is_verifier(&made), "{}", made.len());
        Ok(())
    }

    #[test]
    fn refuses_verifiers_outside_the_rules() {
        for bad in [
            "a".repeat(42),
            "a".repeat(129),
            format!("{}+", "a".repeat(42)),
            format!("{}=", "a".repeat(42)),
            format!("{} ", "a".repeat(42)),
        ] {
            assert!(!is_verifier(&bad), "{bad:?}");
        }
        assert!(is_verifier(&"~._-".repeat(32)));
    }

    #[test]
    fn states_carry_at_least_128_random_bits_and_differ() -> Result<(), Error> {
        let first = state()?;
        let second = state()?;
        let bits = URL_SAFE_NO_PAD
            .decode(first.as_bytes())
            .map_or(0, |bytes| bytes.len() * 8);
        assert!(bits >= 128, "{bits}");
        assert_ne!(first, second);
        Ok(())
    }

    #[test]
    fn verifier_letters_are_all_used() -> Result<(), Error> {
        // With 65 letters and 64 × 200 draws, a letter never drawn means a broken mapping.
        let mut seen = [false; 256];
        for _ in 0..200 {
            for b in verifier(VERIFIER_LEN)?.bytes() {
                seen[usize::from(b)] = true;
            }
        }
        let missing: String = GENERATED
            .iter()
            .filter(|&&b| !seen[usize::from(b)])
            .map(|&b| char::from(b))
            .collect();
        assert!(missing.is_empty(), "never drawn: {missing:?}");
        Ok(())
    }

    proptest! {
        #[test]
        fn generated_verifiers_follow_infobip_and_rfc_7636(len in 0usize..300) {
            let made = verifier(len).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(made.len(), len.clamp(MIN_VERIFIER_LEN, MAX_VERIFIER_LEN));
            prop_assert!(made.len() >= 43 && made.len() <= 128);
            // Infobip's alphabet (A-Z, a-z, 0-9, `-.~`), inside RFC 7636's.
            prop_assert!(made.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.~".contains(&b)));
            prop_assert!(is_verifier(&made));
            let challenge = challenge(&made);
            prop_assert_eq!(challenge.len(), 43);
            prop_assert!(!challenge.contains('='));
        }

        #[test]
        fn generated_states_are_unpadded_base64url_of_256_bits(_round in 0u8..64) {
            let made = state().map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(made.len(), 43);
            let decoded = URL_SAFE_NO_PAD.decode(made.as_bytes());
            prop_assert_eq!(decoded.map(|d| d.len()).ok(), Some(32));
        }
    }
}
