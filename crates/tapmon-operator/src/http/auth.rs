//! Who may read a monitor's series: the bearer token of a scrape is checked with a TokenReview
//! and the user it names authorised with a SubjectAccessReview for `get` on the monitor's
//! `metrics` subresource (`tapmonitors/metrics` in its namespace, `clustertapmonitors/metrics`
//! cluster-wide), as kube-rbac-proxy does. Answers are cached briefly, allow and deny apart,
//! so a Prometheus scraping every 30 s costs no API calls in between.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};
use parking_lot::Mutex;
use tracing::warn;

use crate::object::MonitorKey;

/// How long an allowed token or access is believed.
pub const ALLOW_TTL: Duration = Duration::from_secs(60);
/// How long a refused token or access is believed: short, so a new RoleBinding works soon.
pub const DENY_TTL: Duration = Duration::from_secs(10);
/// Most entries each cache keeps.
const CACHE_ENTRIES: usize = 4096;
/// The subresource a reader of a monitor's series needs `get` on.
pub const METRICS_SUBRESOURCE: &str = "metrics";

/// The answer to a scrape's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Read on.
    Allowed,
    /// No token, or one the API server does not accept (401).
    Unauthenticated,
    /// A valid token whose user may not read this monitor (403).
    Forbidden,
    /// The API server could not be asked (503); nothing is served.
    Unavailable,
}

impl Decision {
    /// The result label of the self-metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Unauthenticated => "unauthenticated",
            Decision::Forbidden => "forbidden",
            Decision::Unavailable => "unavailable",
        }
    }
}

/// A small cache whose entries expire: allowed answers after [`ALLOW_TTL`], refused ones after
/// [`DENY_TTL`]. Bounded: when full of live entries it starts over.
#[derive(Debug)]
struct Cache<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock();
        let (expires, value) = entries.get(key)?;
        (Instant::now() < *expires).then(|| value.clone())
    }

    fn put(&self, key: K, value: V, ttl: Duration) {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        if entries.len() >= CACHE_ENTRIES {
            entries.retain(|_, (expires, _)| *expires > now);
            if entries.len() >= CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (now + ttl, value));
    }
}

/// The user a token names, as the API server authenticated it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct User {
    name: String,
    uid: Option<String>,
    groups: Vec<String>,
    extra: Vec<(String, Vec<String>)>,
}

impl User {
    fn of(info: UserInfo) -> User {
        User {
            name: info.username.unwrap_or_default(),
            uid: info.uid,
            groups: info.groups.unwrap_or_default(),
            extra: info.extra.unwrap_or_default().into_iter().collect(),
        }
    }
}

/// Checks scrapes' credentials against the API server.
pub struct Authorizer {
    client: Client,
    tokens: Cache<String, Option<User>>,
    access: Cache<(User, MonitorKey), bool>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer").finish_non_exhaustive()
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let (scheme, token) = header?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl Authorizer {
    /// An authorizer asking the API server through `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            tokens: Cache::new(),
            access: Cache::new(),
        }
    }

    /// May the bearer of `authorization` (the header) read monitor `key`'s series?
    pub async fn decide(&self, authorization: Option<&str>, key: &MonitorKey) -> Decision {
        let Some(token) = bearer(authorization) else {
            return Decision::Unauthenticated;
        };
        let user = match self.tokens.get(&token.to_owned()) {
            Some(user) => user,
            None => match self.review_token(token).await {
                Ok(user) => {
                    let ttl = if user.is_some() { ALLOW_TTL } else { DENY_TTL };
                    self.tokens.put(token.to_owned(), user.clone(), ttl);
                    user
                }
                Err(e) => {
                    warn!(error = %e, "TokenReview failed; refusing the scrape");
                    return Decision::Unavailable;
                }
            },
        };
        let Some(user) = user else {
            return Decision::Unauthenticated;
        };
        let cache_key = (user, key.clone());
        let allowed = match self.access.get(&cache_key) {
            Some(allowed) => allowed,
            None => match self.review_access(&cache_key.0, key).await {
                Ok(allowed) => {
                    let ttl = if allowed { ALLOW_TTL } else { DENY_TTL };
                    self.access.put(cache_key, allowed, ttl);
                    allowed
                }
                Err(e) => {
                    warn!(error = %e, "SubjectAccessReview failed; refusing the scrape");
                    return Decision::Unavailable;
                }
            },
        };
        if allowed {
            Decision::Allowed
        } else {
            Decision::Forbidden
        }
    }

    async fn review_token(&self, token: &str) -> Result<Option<User>, kube::Error> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        Ok(reviewed
            .status
            .filter(|s| s.authenticated == Some(true) && s.error.is_none())
            .and_then(|s| s.user)
            .map(User::of))
    }

    async fn review_access(&self, user: &User, key: &MonitorKey) -> Result<bool, kube::Error> {
        let ar = key.kind().api_resource();
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: user.uid.clone(),
                groups: Some(user.groups.clone()),
                extra: Some(user.extra.iter().cloned().collect()),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(ar.group),
                    version: Some(ar.version),
                    resource: Some(key.kind().plural().to_owned()),
                    subresource: Some(METRICS_SUBRESOURCE.to_owned()),
                    verb: Some("get".to_owned()),
                    namespace: key.namespace.clone(),
                    name: Some(key.name.clone()),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let reviewed = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        Ok(reviewed
            .status
            .is_some_and(|s| s.allowed && s.denied != Some(true)))
    }
}

#[cfg(test)]
mod tests {
    use http::{Method, Response};
    use http_body_util::BodyExt;
    use kube::client::Body;
    use serde_json::{Value, json};

    use super::*;

    /// Answers the next call, which must be a POST to `path`; returns its body.
    async fn answer(
        handle: &mut tower_test::mock::Handle<http::Request<Body>, http::Response<Body>>,
        path: &str,
        reply: Value,
    ) -> Value {
        let (req, send) = handle.next_request().await.expect("a review");
        assert_eq!((req.method(), req.uri().path()), (&Method::POST, path));
        let body = req.into_body().collect().await.unwrap().to_bytes();
        send.send_response(
            Response::builder()
                .status(201)
                .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                .unwrap(),
        );
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn a_token_is_reviewed_then_its_user_authorised_and_both_answers_cached() {
        let (service, mut handle) = tower_test::mock::pair();
        let auth = Authorizer::new(Client::new(service, "default"));
        let key = MonitorKey::namespaced("team-a", "m");
        assert_eq!(auth.decide(None, &key).await, Decision::Unauthenticated);

        let decided = tokio::spawn(async move {
            let first = auth.decide(Some("Bearer t0k"), &key).await;
            let again = auth.decide(Some("Bearer t0k"), &key).await;
            let other = auth
                .decide(Some("Bearer t0k"), &MonitorKey::namespaced("prod", "m"))
                .await;
            (first, again, other)
        });
        let review = answer(&mut handle, "/apis/authentication.k8s.io/v1/tokenreviews",
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {},
                   "status": {"authenticated": true, "user": {"username": "system:serviceaccount:team-a:prom", "groups": ["system:serviceaccounts"]}}})).await;
        assert_eq!(review["spec"]["token"], "t0k");
        let sar = answer(&mut handle, "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {}, "status": {"allowed": true}})).await;
        assert_eq!(sar["spec"]["user"], "system:serviceaccount:team-a:prom");
        assert_eq!(
            sar["spec"]["resourceAttributes"],
            json!({"group": "tapmon.io", "version": "v1alpha1", "resource": "tapmonitors", "subresource": "metrics",
                   "verb": "get", "namespace": "team-a", "name": "m"})
        );
        // The cached token, a new monitor: one more SubjectAccessReview, refused.
        answer(&mut handle, "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {}, "status": {"allowed": false}})).await;
        assert_eq!(
            decided.await.unwrap(),
            (Decision::Allowed, Decision::Allowed, Decision::Forbidden)
        );
    }

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn cache_entries_expire_and_the_cache_stays_bounded() {
        let cache: Cache<u32, bool> = Cache::new();
        cache.put(1, true, Duration::from_secs(60));
        cache.put(2, false, Duration::ZERO);
        assert_eq!(cache.get(&1), Some(true));
        assert_eq!(cache.get(&2), None, "expired");
        for i in 0..(CACHE_ENTRIES as u32 * 2) {
            cache.put(i, true, Duration::from_secs(60));
        }
        assert!(cache.entries.lock().len() <= CACHE_ENTRIES);
    }
}
