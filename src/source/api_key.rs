//! [`ApiKey`]: `Authorization: App <key>`.

use std::fmt;

use crate::credential::REDACTED;
use crate::error::ConfigError;
use crate::scope::Scopes;
use crate::source::TokenSource;
use crate::{Credential, Error};

/// An Infobip API key, sent as `Authorization: App <key>`.
///
/// Keys do not renew: a `401` means the key was revoked or has passed its expiry date, and is
/// handed back to the caller as [`ErrorKind::InvalidCredentials`](crate::ErrorKind).
///
/// ```
/// use infobip_auth::source::ApiKey;
/// let key = ApiKey::new("003026bbc133714df1834b8638bb496e-8f4b3d9a-e931-478d-a994-28a725159ab9")?;
/// assert!(!format!("{key:?}").contains("003026bbc"));
/// # Ok::<(), infobip_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ApiKey {
    credential: Credential,
}

impl ApiKey {
    /// A key as Infobip's web interface or API key management shows it.
    ///
    /// # Errors
    /// [`ConfigError::InvalidHeaderValue`] when the key is empty or holds a space, CR, LF,
    /// NUL or any other byte that is not visible ASCII.
    ///
    /// ```
    /// # use infobip_auth::source::ApiKey;
    /// assert!(ApiKey::new("abc\r\nX-Injected: 1").is_err());
    /// ```
    pub fn new(key: &str) -> Result<Self, ConfigError> {
        let credential = Credential::new("App", key)
            .map_err(|_| ConfigError::InvalidHeaderValue { what: "API key" })?;
        Ok(Self { credential })
    }

    /// Declares the scopes granted to the key, so a scope check can tell which one a `403`
    /// lacked, or refuse a request the key cannot make before sending it.
    ///
    /// ```
    /// # use infobip_auth::source::{ApiKey, TokenSource};
    /// let key = ApiKey::new("k")?.with_scopes("inbound-message:read".parse()?);
    /// // The credential carries the scopes; the scope check reads them from there.
    /// let scopes = key.fixed().and_then(|credential| credential.scopes().cloned());
    /// assert_eq!(scopes, Some("inbound-message:read".parse()?));
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn with_scopes(self, scopes: Scopes) -> Self {
        Self {
            credential: self.credential.with_scopes(scopes),
        }
    }
}

impl TokenSource for ApiKey {
    async fn fetch(&self, _previous: Option<&Credential>) -> Result<Credential, Error> {
        Ok(self.credential.clone())
    }

    fn fixed(&self) -> Option<Credential> {
        Some(self.credential.clone())
    }

    fn name(&self) -> &'static str {
        "api_key"
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("key", &REDACTED)
            .field("scopes", &self.credential.scopes())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[tokio::test]
    async fn sends_the_seed_header() -> Result<(), Error> {
        let key = "003026bbc133714df1834b8638bb496e-8f4b3d9a-e931-478d-a994-28a725159ab9";
        let credential = ApiKey::new(key)?.fetch(None).await?;
        assert_eq!(credential.header(), &format!("App {key}"));
        assert!(credential.header().is_sensitive());
        Ok(())
    }

    #[test]
    fn refuses_keys_a_header_cannot_carry() {
        for key in [
            "",
            " ",
            "a\rb",
            "a\nb",
            "a\0b",
            "a b",
            "a\u{7f}b",
            "ключ",
            "a\u{200b}b",
        ] {
            assert_eq!(
                ApiKey::new(key).err(),
                Some(ConfigError::InvalidHeaderValue { what: "API key" }),
                "{key:?}"
            );
        }
    }

    #[test]
    fn debug_redacts_the_key() -> Result<(), ConfigError> {
        let debug = format!("{:?}", ApiKey::new("super-secret-key")?);
        assert!(!debug.contains("super-secret"), "{debug}");
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_key_is_taken_or_refused_without_showing_it(
            key in prop_oneof![".{0,40}", "[!-~]{8,40}", "[!-~]{4,10}[\r\n\0 é][!-~]{4,10}"],
        ) {
            let shown = match ApiKey::new(&key) {
                Ok(source) => format!("{source:?}"),
                Err(err) => {
                    prop_assert_eq!(&err, &ConfigError::InvalidHeaderValue { what: "API key" });
                    format!("{err} {err:?}")
                }
            };
            prop_assert!(key.len() < 8 || !shown.contains(&key), "{}", shown);
        }
    }
}
