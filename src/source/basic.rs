//! [`Basic`]: `Authorization: Basic <base64(username:password)>` (RFC 7617).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::credential::REDACTED;
use crate::error::ConfigError;
use crate::scope::Scopes;
use crate::source::TokenSource;
use crate::{Credential, Error};

/// A username and password sent with every request, as
/// [RFC 7617](https://www.rfc-editor.org/rfc/rfc7617) says: `username:password` in UTF-8,
/// standard Base64 with padding.
///
/// Infobip recommends Basic least, but some endpoints (API key management) accept it where they
/// refuse API keys. The password is kept only inside the ready header, zeroized on drop.
///
/// ```
/// use infobip_auth::source::Basic;
/// let basic = Basic::new("Aladdin", "openSesame")?;
/// assert!(!format!("{basic:?}").contains("openSesame"));
/// # Ok::<(), infobip_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Basic {
    username: String,
    credential: Credential,
}

impl Basic {
    /// Encodes `username:password` once, for every request to reuse.
    ///
    /// # Errors
    /// [`ConfigError::ColonInUsername`] when the username holds a `:` (RFC 7617 §2);
    /// [`ConfigError::Empty`] when the username is empty; [`ConfigError::InvalidHeaderValue`]
    /// when either holds a control character.
    ///
    /// ```
    /// # use infobip_auth::{ConfigError, source::Basic};
    /// assert_eq!(Basic::new("a:b", "pw").err(), Some(ConfigError::ColonInUsername));
    /// ```
    pub fn new(username: &str, password: &str) -> Result<Self, ConfigError> {
        if username.is_empty() {
            return Err(ConfigError::Empty { what: "username" });
        }
        if username.contains(':') {
            return Err(ConfigError::ColonInUsername);
        }
        if username
            .chars()
            .chain(password.chars())
            .any(char::is_control)
        {
            return Err(ConfigError::InvalidHeaderValue {
                what: "username or password",
            });
        }
        // Sized up front: a growing buffer would leave copies of the password in freed memory.
        let mut joined = Zeroizing::new(String::with_capacity(username.len() + 1 + password.len()));
        joined.push_str(username);
        joined.push(':');
        joined.push_str(password);
        let encoded = Zeroizing::new(STANDARD.encode(joined.as_bytes()));
        let credential = Credential::new("Basic", &encoded)?;
        Ok(Self {
            username: username.to_owned(),
            credential,
        })
    }

    /// Declares the scopes the user holds (see [`ApiKey::with_scopes`](crate::source::ApiKey::with_scopes)).
    ///
    /// ```
    /// # use infobip_auth::source::{Basic, TokenSource};
    /// let basic = Basic::new("user", "pw")?.with_scopes("account-management:manage".parse()?);
    /// let scopes = basic.fixed().and_then(|credential| credential.scopes().cloned());
    /// assert_eq!(scopes, Some("account-management:manage".parse()?));
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn with_scopes(self, scopes: Scopes) -> Self {
        Self {
            credential: self.credential.with_scopes(scopes),
            ..self
        }
    }
}

impl TokenSource for Basic {
    async fn fetch(&self, _previous: Option<&Credential>) -> Result<Credential, Error> {
        Ok(self.credential.clone())
    }

    fn fixed(&self) -> Option<Credential> {
        Some(self.credential.clone())
    }

    fn name(&self) -> &'static str {
        "basic"
    }
}

impl fmt::Debug for Basic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Basic")
            .field("username", &self.username)
            .field("password", &REDACTED)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    async fn header(username: &str, password: &str) -> Result<String, Error> {
        let credential = Basic::new(username, password)?.fetch(None).await?;
        Ok(credential.header().to_str().unwrap_or_default().to_owned())
    }

    #[tokio::test]
    async fn encodes_the_seed_and_rfc_examples() -> Result<(), Error> {
        assert_eq!(
            header("Aladdin", "openSesame").await?,
            "Basic QWxhZGRpbjpvcGVuU2VzYW1l"
        );
        assert_eq!(header("test", "123£").await?, "Basic dGVzdDoxMjPCow==");
        assert_eq!(
            header("Aladdin", "open sesame").await?,
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        Ok(())
    }

    #[test]
    fn refuses_bad_usernames_and_control_characters() {
        assert_eq!(
            Basic::new("ali:baba", "pw").err(),
            Some(ConfigError::ColonInUsername)
        );
        assert_eq!(
            Basic::new("", "pw").err(),
            Some(ConfigError::Empty { what: "username" })
        );
        assert!(Basic::new("user", "pw\r\n").is_err());
        assert!(Basic::new("us\0er", "pw").is_err());
    }

    #[test]
    fn debug_redacts_the_password() -> Result<(), ConfigError> {
        let debug = format!("{:?}", Basic::new("Aladdin", "openSesame")?);
        assert!(
            !debug.contains("openSesame") && !debug.contains("QWxh"),
            "{debug}"
        );
        assert!(debug.contains("Aladdin"), "{debug}");
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_username_and_password_are_taken_or_refused_without_the_password(
            username in prop_oneof![".{0,12}", "[a-z]{1,12}", "[a-z]{1,4}:[a-z]{0,4}"],
            password in prop_oneof![".{0,30}", "[!-~ ]{8,30}", "[a-z]{4}[\r\n\0\u{7f}\u{85}][a-z]{4}"],
        ) {
            let shown = match Basic::new(&username, &password) {
                Ok(source) => {
                    prop_assert!(!username.is_empty() && !username.contains(':'));
                    format!("{source:?}")
                }
                Err(err) => format!("{err} {err:?}"),
            };
            let hidden = password.len() < 8 || username.contains(password.as_str());
            prop_assert!(hidden || !shown.contains(&password), "{}", shown);
        }
    }
}
