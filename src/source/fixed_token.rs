//! [`FixedToken`]: `Authorization: <scheme> <token>` for a token that never changes.

use std::fmt;

use crate::credential::REDACTED;
use crate::error::ConfigError;
use crate::scope::Scopes;
use crate::source::TokenSource;
use crate::{BaseUrl, Credential, Error};

/// A token that never changes, sent as `Authorization: <scheme> <token>`: another API's
/// bearer token or personal access token, kept by the layer as an [`ApiKey`](super::ApiKey)
/// is kept for Infobip.
///
/// It does not renew: a `401` to it is final, handed back with
/// [`ErrorKind::InvalidCredentials`](crate::ErrorKind::InvalidCredentials) in its extensions.
/// It needs no runtime. Bind it to its API with [`with_base_url`](Self::with_base_url): the
/// layer then sends it there alone (without one, it would go to Infobip's hosts, as an API
/// key does).
///
/// ```
/// use http::Request;
/// use infobip_auth::InfobipAuthLayer;
/// use infobip_auth::source::FixedToken;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// // Stands in for the API: answers with the Authorization header it got.
/// let api = service_fn(|request: Request<String>| async move {
///     let seen = request.headers()["authorization"].to_str().unwrap_or_default().to_owned();
///     Ok::<_, std::convert::Infallible>(http::Response::new(seen))
/// });
/// let token = FixedToken::bearer("ghp_16C7e42F292c6912E7710c838347Ae178B4a")?;
/// assert!(!format!("{token:?}").contains("ghp_"));
/// let layer = InfobipAuthLayer::new(token.with_base_url("https://api.example.com")?);
///
/// let request = Request::get("https://api.example.com/v1/repos").body(String::new())?;
/// let response = layer.layer(api).oneshot(request).await?;
/// assert_eq!(response.body(), "Bearer ghp_16C7e42F292c6912E7710c838347Ae178B4a");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FixedToken {
    credential: Credential,
    base: Option<BaseUrl>,
}

impl FixedToken {
    /// A token sent as `Authorization: {scheme} {token}`.
    ///
    /// # Errors
    /// [`ConfigError::InvalidHeaderValue`] when the scheme or token is empty or holds anything
    /// but visible ASCII (a space, CR, LF, NUL or a non-ASCII byte).
    ///
    /// ```
    /// # use infobip_auth::source::{FixedToken, TokenSource};
    /// let token = FixedToken::new("Token", "9944b09199c62bcf9418ad846dd0e4bb")?;
    /// assert!(token.fixed().is_some_and(|c| c.header() == "Token 9944b09199c62bcf9418ad846dd0e4bb"));
    /// assert!(FixedToken::new("Token", "abc\r\nX-Injected: 1").is_err());
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    pub fn new(scheme: &str, token: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            credential: Credential::new(scheme, token)?,
            base: None,
        })
    }

    /// A token sent as `Authorization: Bearer {token}` (RFC 6750).
    ///
    /// # Errors
    /// As [`new`](Self::new).
    ///
    /// ```
    /// # use infobip_auth::source::{FixedToken, TokenSource};
    /// let token = FixedToken::bearer("mF_9.B5f-4.1JqM")?;
    /// assert!(token.fixed().is_some_and(|c| c.header() == "Bearer mF_9.B5f-4.1JqM"));
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    pub fn bearer(token: &str) -> Result<Self, ConfigError> {
        Self::new("Bearer", token)
    }

    /// Declares the scopes the token holds, for a scope check to explain a `403` or refuse a
    /// request before sending it.
    ///
    /// ```
    /// # use infobip_auth::source::{FixedToken, TokenSource};
    /// let token = FixedToken::bearer("t")?.with_scopes("messages:send".parse()?);
    /// let scopes = token.fixed().and_then(|credential| credential.scopes().cloned());
    /// assert_eq!(scopes, Some("messages:send".parse()?));
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn with_scopes(self, scopes: Scopes) -> Self {
        Self {
            credential: self.credential.with_scopes(scopes),
            ..self
        }
    }

    /// Binds the token to the API at `url`: the layer sends it to that origin alone (and to
    /// origins added with [`allow_origin`](crate::InfobipAuthLayer::allow_origin)), over HTTPS
    /// unless the host is loopback.
    ///
    /// # Errors
    /// [`ConfigError::InvalidUrl`] or [`ConfigError::InsecureUrl`], as [`BaseUrl::new`].
    ///
    /// ```
    /// # use infobip_auth::source::{FixedToken, TokenSource};
    /// let token = FixedToken::bearer("t")?.with_base_url("https://api.example.com")?;
    /// assert_eq!(token.base_url().map(ToString::to_string).as_deref(), Some("https://api.example.com"));
    /// assert!(FixedToken::bearer("t")?.with_base_url("http://api.example.com").is_err()); // clear text
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    pub fn with_base_url(self, url: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            base: Some(BaseUrl::new(url)?),
            ..self
        })
    }
}

impl TokenSource for FixedToken {
    async fn fetch(&self, _previous: Option<&Credential>) -> Result<Credential, Error> {
        Ok(self.credential.clone())
    }

    fn fixed(&self) -> Option<Credential> {
        Some(self.credential.clone())
    }

    fn base_url(&self) -> Option<&BaseUrl> {
        self.base.as_ref()
    }

    fn name(&self) -> &'static str {
        "fixed_token"
    }
}

impl fmt::Debug for FixedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedToken")
            .field("scheme", &self.credential.scheme())
            .field("token", &REDACTED)
            .field("scopes", &self.credential.scopes())
            .field("base_url", &self.base)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use http::{Request, Response, StatusCode};
    use tower::{Layer, ServiceExt, service_fn};

    use super::*;
    use crate::{ErrorKind, InfobipAuthLayer};

    #[test]
    fn refuses_what_a_header_cannot_carry() {
        for (scheme, token, what) in [
            ("Bearer", "", "token"),
            ("Bearer", "a b", "token"),
            ("Bearer", "a\r\nX-Injected: 1", "token"),
            ("Bearer", "тoken", "token"),
            ("", "t", "authorization scheme"),
            ("Bear er", "t", "authorization scheme"),
        ] {
            assert_eq!(
                FixedToken::new(scheme, token).err(),
                Some(ConfigError::InvalidHeaderValue { what }),
                "{scheme:?} {token:?}"
            );
        }
    }

    #[test]
    fn debug_shows_the_scheme_not_the_token() -> Result<(), ConfigError> {
        let debug = format!("{:?}", FixedToken::new("Token", "super-secret-token")?);
        assert!(debug.contains("\"Token\""), "{debug}");
        assert!(!debug.contains("super-secret"), "{debug}");
        Ok(())
    }

    /// Bound to its API: sent there, and not to an Infobip host.
    #[tokio::test]
    async fn a_token_with_a_base_url_goes_to_its_origin_alone() -> Result<(), crate::BoxError> {
        let api = service_fn(|request: Request<String>| async move {
            let seen = request.headers().get("authorization").is_some();
            Ok::<_, std::convert::Infallible>(Response::new(seen.to_string()))
        });
        let token = FixedToken::bearer("t")?.with_base_url("https://api.example.com/v1")?;
        let service = InfobipAuthLayer::new(token).layer(api);
        let to = |uri: &str| Request::get(uri).body(String::new());
        let sent = service
            .clone()
            .oneshot(to("https://api.example.com/v2/x")?)
            .await?;
        assert_eq!(sent.body(), "true");
        let refused = service
            .oneshot(to("https://xyz12.api.infobip.com/sms/1/inbox/reports")?)
            .await;
        let error = refused.err().ok_or("sent to Infobip")?;
        let kind = Error::find(&*error).map(Error::kind);
        assert!(
            matches!(kind, Some(ErrorKind::HostNotAllowed { .. })),
            "{error}"
        );
        Ok(())
    }

    /// A `401` to a fixed token is final: no second fetch, no replay, the error attached.
    #[tokio::test]
    async fn a_refused_token_is_not_renewed() -> Result<(), crate::BoxError> {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        let api = service_fn(move |_: Request<String>| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async {
                let mut response = Response::new(String::new());
                *response.status_mut() = StatusCode::UNAUTHORIZED;
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let token = FixedToken::bearer("revoked")?.with_base_url("https://api.example.com")?;
        let layer = InfobipAuthLayer::new(token);
        let request = Request::get("https://api.example.com/v1").body(String::new())?;
        let response = layer.layer(api).oneshot(request).await?;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        let error = response.extensions().get::<Error>().ok_or("no error")?;
        assert!(matches!(error.kind(), ErrorKind::InvalidCredentials(_)));
        assert!(!format!("{error} {error:?}").contains("revoked"));
        Ok(())
    }
}
