//! The public API's promises that the compiler can check: which types are `Send`/`Sync`, which
//! implement the common traits a user reaches for, and that the crate's errors go through `?`
//! into a boxed error. Most of this file fails to compile, not to run, when a promise breaks.

use std::cell::Cell;
use std::collections::{BTreeSet, HashSet};
use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt::{Debug, Display};
use std::future::{Ready, ready};
use std::hash::Hash;
use std::str::FromStr;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use infobip_auth::mock::{Counters, ExchangeApp, Fault, MockConfig, MockServer, ReceivedRequest};
use infobip_auth::source::client_credentials::ClientAuthentication;
use infobip_auth::source::{
    ApiKey, AuthCode, AuthCodeFlow, AuthorizationGrant, Basic, ClientCredentials, FixedToken,
    MemoryStore, PendingAuthorization, Session, SharedTokenSource, StoredToken, TokenSource,
    TokenStore, Transport,
};
use infobip_auth::{
    Account, ApiError, AuthScheme, BaseUrl, BoxError, Catalog, ConfigError, Credential, Error,
    ErrorKind, Forbidden, GrpcRenewal, GrpcRenewalLayer, InfobipAuth, InfobipAuthLayer, Named,
    RefreshPolicy, ReplayPolicy, Scope, ScopeCheck, ScopeCheckLayer, Scopes, future, grpc, scope,
};
use tower::Service;

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}
fn static_error<T: StdError + Send + Sync + 'static>() {}
fn clone_debug<T: Clone + Debug>() {}
fn value<T: Clone + Debug + PartialEq + Eq + Hash>() {}
fn shown<T: Display>() {}
fn parsed<T: FromStr>() {}
fn defaulted<T: Default>() {}

/// An inner service that is `Send` but not `Sync` (it keeps a `Cell`), whose future is `Send`.
#[derive(Clone)]
struct SendOnly(Cell<u32>);

impl<B> Service<Request<B>> for SendOnly {
    type Response = Response<UnsyncBoxBody<Bytes, Infallible>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        self.0.set(self.0.get() + 1);
        ready(Ok(Response::new(UnsyncBoxBody::default())))
    }
}

/// A `Send + Sync` inner service, as a hyper-util client or a tonic channel is.
type Shared = tower::util::BoxCloneSyncService<Request<String>, Response<String>, Infallible>;

/// A request body that is `Send` but not `Sync` (hyper-util's `BoxBody`-style bodies).
type SendOnlyBody = UnsyncBoxBody<Bytes, Infallible>;

#[test]
fn what_users_hold_across_await_or_share_between_tasks_is_send_and_sync() {
    send_sync::<InfobipAuthLayer>();
    send_sync::<InfobipAuth<Shared>>();
    send_sync::<GrpcRenewalLayer>();
    send_sync::<GrpcRenewal<Shared>>();
    send_sync::<ScopeCheckLayer>();
    send_sync::<ScopeCheck<Shared>>();
    send_sync::<ReplayPolicy>();
    send_sync::<RefreshPolicy>();

    send_sync::<ApiKey>();
    send_sync::<Basic>();
    send_sync::<Session>();
    send_sync::<ClientCredentials>();
    send_sync::<FixedToken>();
    send_sync::<AuthCode>();
    send_sync::<AuthCodeFlow>();
    send_sync::<PendingAuthorization>();
    send_sync::<AuthorizationGrant>();
    send_sync::<MemoryStore>();
    send_sync::<StoredToken>();
    send_sync::<SharedTokenSource>();
    send_sync::<Transport>();

    send_sync::<Credential>();
    send_sync::<Account>();
    send_sync::<Error>();
    send_sync::<ErrorKind>();
    send_sync::<ApiError>();
    send_sync::<Forbidden>();
    send_sync::<ConfigError>();
    send_sync::<BaseUrl>();

    send_sync::<AuthScheme>();
    send_sync::<Scope>();
    send_sync::<Scopes>();
    send_sync::<Catalog>();

    send_sync::<MockServer>();
    send_sync::<MockConfig>();
    send_sync::<Counters>();
    send_sync::<Fault>();
    #[cfg(feature = "reqwest")]
    {
        send_sync::<infobip_auth::reqwest::InfobipAuthMiddleware>();
        send_sync::<scope::ScopeCheckMiddleware>();
    }
    #[cfg(feature = "tower-http")]
    {
        send_sync::<scope::ScopeClassifier>();
        send_sync::<scope::ScopeResponseClassifier>();
        send_sync::<scope::ScopeFailureClass>();
    }
}

/// A service that is `Send` but not `Sync` is still one a task can own, and what it hands back
/// is still something `tokio::spawn` and an axum handler take.
#[test]
fn services_and_their_futures_and_bodies_are_send_when_their_parts_are() {
    send::<InfobipAuth<SendOnly>>();
    send::<GrpcRenewal<SendOnly>>();
    send::<ScopeCheck<SendOnly>>();

    send::<<InfobipAuth<SendOnly> as Service<Request<SendOnlyBody>>>::Future>();
    send::<future::ResponseFuture<SendOnly, SendOnlyBody>>();
    send::<future::ResponseFuture<Shared, String>>();
    send::<<GrpcRenewal<SendOnly> as Service<Request<SendOnlyBody>>>::Future>();
    send::<grpc::ResponseBody<SendOnlyBody>>();
    send::<<ScopeCheck<SendOnly> as Service<Request<SendOnlyBody>>>::Future>();
    send::<scope::ResponseBody<SendOnlyBody>>();

    // Stacked as the crate documents: scope check and gRPC renewal inside the auth layer.
    send::<
        <InfobipAuth<ScopeCheck<GrpcRenewal<SendOnly>>> as Service<Request<SendOnlyBody>>>::Future,
    >();
}

/// Over `Send + Sync` parts, the bodies a user hands on (to hyper, to axum) are `Sync` too.
#[test]
fn bodies_over_sync_parts_are_sync() {
    send_sync::<grpc::ResponseBody<String>>();
    send_sync::<scope::ResponseBody<String>>();
}

#[test]
fn the_errors_go_through_question_mark_into_boxed_errors() -> Result<(), BoxError> {
    static_error::<Error>();
    static_error::<ConfigError>();

    fn config() -> Result<BaseUrl, BoxError> {
        Ok(BaseUrl::new("not a url")?)
    }
    fn fetch() -> Result<(), Box<dyn StdError + Send + Sync + 'static>> {
        Err(Error::new(ErrorKind::ReauthorizationRequired))?
    }
    let config_error = config().err().ok_or("a bad URL was taken")?;
    assert!(config_error.downcast_ref::<ConfigError>().is_some());
    let error = fetch().err().ok_or("no error")?;
    assert!(Error::find(&*error).is_some());
    // A configuration error turns into the crate's error without losing its kind.
    let wrapped: Error = ConfigError::ColonInUsername.into();
    assert!(matches!(wrapped.kind(), ErrorKind::Config(_)));
    Ok(())
}

#[test]
fn common_traits() {
    // Values users compare, put in sets or key maps by.
    value::<AuthScheme>();
    value::<Scope>();
    value::<Scopes>();
    value::<BaseUrl>();
    value::<Named>();
    value::<Account>();
    value::<ClientAuthentication>();
    clone_debug::<Fault>();
    clone_debug::<ErrorKind>();
    clone_debug::<ConfigError>();
    clone_debug::<ApiError>();
    clone_debug::<Forbidden>();
    clone_debug::<Account>();
    clone_debug::<Counters>();
    clone_debug::<ReceivedRequest>();

    // Values users show.
    shown::<Error>();
    shown::<ConfigError>();
    shown::<ApiError>();
    shown::<Forbidden>();
    shown::<Scope>();
    shown::<Scopes>();
    shown::<BaseUrl>();

    // Values users write in configuration.
    parsed::<Scope>();
    parsed::<Scopes>();
    parsed::<BaseUrl>();

    // Handles cloned per task or per request.
    clone_debug::<Error>();
    clone_debug::<Credential>();
    clone_debug::<InfobipAuthLayer>();
    clone_debug::<InfobipAuth<Shared>>();
    clone_debug::<GrpcRenewalLayer>();
    clone_debug::<ScopeCheckLayer>();
    clone_debug::<ReplayPolicy>();
    clone_debug::<RefreshPolicy>();
    clone_debug::<Catalog>();
    clone_debug::<ApiKey>();
    clone_debug::<Basic>();
    clone_debug::<Session>();
    clone_debug::<ClientCredentials>();
    clone_debug::<FixedToken>();
    clone_debug::<AuthCode>();
    clone_debug::<AuthCodeFlow>();
    clone_debug::<MemoryStore>();
    clone_debug::<StoredToken>();
    clone_debug::<SharedTokenSource>();
    clone_debug::<Transport>();
    clone_debug::<MockConfig>();
    clone_debug::<ExchangeApp>();

    // Obvious defaults.
    defaulted::<ReplayPolicy>();
    defaulted::<RefreshPolicy>();
    defaulted::<ScopeCheckLayer>();
    defaulted::<Scopes>();
    defaulted::<MemoryStore>();
    defaulted::<MockConfig>();
    defaulted::<Account>();
}

/// `Scopes` is a set: it is built, extended and taken apart the way the standard sets are.
#[test]
fn scopes_is_a_collection() -> Result<(), BoxError> {
    let message: Scope = "message:send".parse()?;
    let mut scopes: Scopes = [message.clone()].into_iter().collect();
    scopes.extend(["sms:send".parse::<Scope>()?]);
    scopes.extend(&Scopes::from_str("account-management:manage")?);
    assert_eq!(scopes.len(), 3);
    let owned: BTreeSet<Scope> = scopes.clone().into_iter().collect();
    assert!(owned.contains(&message));
    let by_name: HashSet<&str> = scopes.iter().map(Scope::as_str).collect();
    assert!(by_name.contains("sms:send"));
    Ok(())
}

/// Any OAuth 2.0 server's scope names go everywhere a scope is declared: a fixed token, a
/// client-credentials source, a catalogue operation.
#[test]
fn other_servers_scope_names_can_be_declared() -> Result<(), BoxError> {
    let names = "Messages.Send https://graph.microsoft.com/.default read:org";
    let scopes: Scopes = names.parse()?;
    let token = FixedToken::bearer("t")?.with_scopes(scopes.clone());
    let declared = token.fixed().and_then(|c| c.scopes().cloned());
    assert_eq!(declared.as_ref(), Some(&scopes));
    // Never called: building asks nothing of the server.
    let unused = tower::service_fn(|_: Request<http_body_util::Full<Bytes>>| {
        ready(Ok::<_, Infallible>(Response::new(String::new())))
    });
    ClientCredentials::builder("https://auth.example.com", "client", "secret")
        .transport(Transport::new(unused))
        .request_scope(names)
        .scopes(scopes.clone())
        .build()?;
    let catalog = Catalog::empty().with_operation(
        http::Method::POST,
        "/v1.0/me/sendMail",
        scopes.clone(),
        &[AuthScheme::OAuth2],
    )?;
    let operation = catalog
        .lookup(&http::Method::POST, "/v1.0/me/sendMail")
        .ok_or("not found")?;
    assert_eq!(operation.required, &scopes);
    assert!(matches!(
        "Messages.Send \"Mail\"".parse::<Scopes>(),
        Err(ConfigError::InvalidScope { name }) if name == "\"Mail\""
    ));
    Ok(())
}

/// The shipped sources and stores implement the traits users write their own against, and a
/// source turns into the shared handle the layer takes.
#[test]
fn the_shipped_sources_and_stores_implement_their_traits() {
    fn source<T: TokenSource>() {}
    fn store<T: TokenStore>() {}
    source::<ApiKey>();
    source::<Basic>();
    source::<Session>();
    source::<ClientCredentials>();
    source::<FixedToken>();
    source::<AuthCode>();
    store::<MemoryStore>();
    store::<std::sync::Arc<MemoryStore>>();
    let _: fn(ApiKey) -> SharedTokenSource = SharedTokenSource::from;
}

/// A token source of the user's own reports what went wrong in the crate's words: the kinds a
/// token request meets are built outside the crate (marking one `#[non_exhaustive]` breaks this).
#[test]
fn a_token_source_of_ones_own_builds_the_kinds_a_token_request_meets() {
    let refused = || ApiError::from_body(http::StatusCode::UNAUTHORIZED, b"{}");
    let kinds = [
        ErrorKind::MalformedResponse {
            reason: "no access_token".to_owned(),
        },
        ErrorKind::TokenEndpoint(ApiError::from_body(http::StatusCode::BAD_GATEWAY, b"")),
        ErrorKind::InvalidCredentials(refused()),
        ErrorKind::Transport,
        ErrorKind::Timeout,
        ErrorKind::ReauthorizationRequired,
        ErrorKind::Store,
    ];
    for kind in kinds {
        let error = Error::new(kind).with_source(std::io::Error::other("cause"));
        assert!(!error.to_string().is_empty());
    }
}
