//! Who may use a running `labctl ui`: the per-run secret, the session cookie it buys, the Host
//! check against DNS rebinding, and the CSRF token every state-changing request must carry.
//!
//! The URL labctl prints holds the secret (`/?token=…`). Opening it sets an HttpOnly,
//! SameSite=Strict cookie holding a separate random session value and redirects to the same
//! path without the token, so the secret does not stay in the address bar or the history of
//! later pages. Every other request needs that cookie, or gets 401. Requests whose `Host` is not
//! the loopback address the dashboard listens on are refused (a page on another name that
//! resolves to 127.0.0.1 cannot read it). POSTs must come from the dashboard's own origin
//! (`Origin`, `Sec-Fetch-Site`) and carry the page's CSRF token ([`Keys::csrf_ok`]); the
//! coordinator alone decides whether the identity may do what is asked.
//!
//! Pure: [`gate`] decides from the request's parts; the server turns its answer into a response.

use axum::http::{HeaderMap, Method, StatusCode, Uri};

/// The secrets of one run, made fresh at start and never written anywhere but stdout.
#[derive(Debug, Clone)]
pub struct Keys {
    /// In the printed URL; trades for the cookie.
    pub secret: String,
    /// The cookie's value.
    session: String,
    /// Put into every page; every POST must send it back.
    pub csrf: String,
    /// Cookie name, with the port, so dashboards on different ports do not overwrite each
    /// other's cookie (browsers do not separate cookies by port).
    pub cookie: String,
}

impl Keys {
    /// New random keys for a dashboard on `port`.
    pub fn random(port: u16) -> Keys {
        let hex32 = || hex::encode(rand::random::<[u8; 32]>());
        Keys {
            secret: hex32(),
            session: hex32(),
            csrf: hex32(),
            cookie: format!("labctl_ui_{port}"),
        }
    }

    /// Whether `token` is this run's CSRF token.
    pub fn csrf_ok(&self, token: &str) -> bool {
        same(token.as_bytes(), self.csrf.as_bytes())
    }
}

/// Equality that takes as long for every input of a given length, so the secret cannot be
/// guessed byte by byte from response times. Pure.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// Let it through.
    Pass,
    /// The secret was right: set this cookie and redirect to `location`.
    SignIn {
        /// `Set-Cookie` value.
        set_cookie: String,
        /// The path (and other query parameters) without the token.
        location: String,
    },
    /// Refuse with this status and message.
    Refuse(StatusCode, &'static str),
}

/// The message of a request without the secret.
pub const NEED_SECRET: &str = "this dashboard needs the secret URL that 'labctl ui' printed when it started; open that URL (it holds ?token=…) in this browser";

/// Decides about one request. `hosts` are the `Host` values accepted (None: any, for a
/// dashboard bound to a non-loopback address on purpose). Pure.
pub fn gate(
    keys: &Keys,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    hosts: Option<&[String]>,
) -> Gate {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if let Some(hosts) = hosts {
        if !hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return Gate::Refuse(
                StatusCode::MISDIRECTED_REQUEST,
                "wrong Host header: open the dashboard by the address 'labctl ui' printed",
            );
        }
    }
    if let Some(token) = query_value(uri, "token") {
        if method != Method::GET || !same(token.as_bytes(), keys.secret.as_bytes()) {
            return Gate::Refuse(StatusCode::UNAUTHORIZED, NEED_SECRET);
        }
        return Gate::SignIn {
            set_cookie: format!(
                "{}={}; Path=/; HttpOnly; SameSite=Strict",
                keys.cookie, keys.session
            ),
            location: without_token(uri),
        };
    }
    let signed_in = cookie_value(headers, &keys.cookie)
        .is_some_and(|v| same(v.as_bytes(), keys.session.as_bytes()));
    if !signed_in {
        return Gate::Refuse(StatusCode::UNAUTHORIZED, NEED_SECRET);
    }
    if method != Method::GET && method != Method::HEAD && !same_origin(headers, host) {
        return Gate::Refuse(
            StatusCode::FORBIDDEN,
            "cross-site request refused: changes can only be made from the dashboard's own pages",
        );
    }
    Gate::Pass
}

/// Whether a state-changing request comes from our own pages: `Sec-Fetch-Site` (sent by
/// current browsers) is `same-origin`, and `Origin`, when sent, is this dashboard.
fn same_origin(headers: &HeaderMap, host: &str) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if fetch_site.is_some_and(|s| s != "same-origin" && s != "none") {
        return false;
    }
    match headers.get(axum::http::header::ORIGIN) {
        None => true,
        Some(origin) => origin
            .to_str()
            .is_ok_and(|o| o.eq_ignore_ascii_case(&format!("http://{host}"))),
    }
}

/// The value of query parameter `name` (undecoded: the secret is hex).
fn query_value<'a>(uri: &'a Uri, name: &str) -> Option<&'a str> {
    uri.query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn without_token(uri: &Uri) -> String {
    let rest: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("token="))
        .collect();
    let path = uri.path();
    if rest.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", rest.join("&"))
    }
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys {
            secret: "s3cret".into(),
            session: "sess".into(),
            csrf: "tok".into(),
            cookie: "labctl_ui_80".into(),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn hosts() -> Vec<String> {
        vec!["127.0.0.1:80".into()]
    }

    fn decide(method: Method, uri: &str, pairs: &[(&'static str, &str)]) -> Gate {
        gate(
            &keys(),
            &method,
            &uri.parse().unwrap(),
            &headers(pairs),
            Some(&hosts()),
        )
    }

    const HOST: (&str, &str) = ("host", "127.0.0.1:80");
    const COOKIE: (&str, &str) = ("cookie", "other=1; labctl_ui_80=sess");

    #[test]
    fn the_secret_buys_a_strict_cookie_and_leaves_the_url() {
        assert_eq!(
            decide(Method::GET, "/jobs?token=s3cret&page=2", &[HOST]),
            Gate::SignIn {
                set_cookie: "labctl_ui_80=sess; Path=/; HttpOnly; SameSite=Strict".into(),
                location: "/jobs?page=2".into()
            }
        );
        assert!(matches!(
            decide(Method::GET, "/?token=wrong", &[HOST]),
            Gate::Refuse(StatusCode::UNAUTHORIZED, _)
        ));
        assert!(matches!(
            decide(Method::POST, "/?token=s3cret", &[HOST]),
            Gate::Refuse(StatusCode::UNAUTHORIZED, _)
        ));
    }

    #[test]
    fn without_the_cookie_nothing_but_401() {
        assert!(matches!(
            decide(Method::GET, "/", &[HOST]),
            Gate::Refuse(StatusCode::UNAUTHORIZED, _)
        ));
        assert!(matches!(
            decide(Method::GET, "/", &[HOST, ("cookie", "labctl_ui_80=guess")]),
            Gate::Refuse(StatusCode::UNAUTHORIZED, _)
        ));
        assert_eq!(decide(Method::GET, "/nodes", &[HOST, COOKIE]), Gate::Pass);
    }

    #[test]
    fn another_host_name_is_refused_even_with_the_cookie() {
        assert!(matches!(
            decide(Method::GET, "/", &[("host", "evil.example:80"), COOKIE]),
            Gate::Refuse(StatusCode::MISDIRECTED_REQUEST, _)
        ));
        let any = gate(
            &keys(),
            &Method::GET,
            &"/".parse().unwrap(),
            &headers(&[("host", "lab.example:80"), COOKIE]),
            None,
        );
        assert_eq!(any, Gate::Pass);
    }

    #[test]
    fn cross_site_posts_are_refused() {
        let post = |extra: &[(&'static str, &str)]| {
            let mut pairs = vec![HOST, COOKIE];
            pairs.extend_from_slice(extra);
            decide(Method::POST, "/jobs/j/cancel", &pairs)
        };
        assert_eq!(post(&[("origin", "http://127.0.0.1:80")]), Gate::Pass);
        assert_eq!(post(&[("sec-fetch-site", "same-origin")]), Gate::Pass);
        assert!(matches!(
            post(&[("origin", "http://127.0.0.1:8080")]),
            Gate::Refuse(StatusCode::FORBIDDEN, _)
        ));
        assert!(matches!(
            post(&[("origin", "null")]),
            Gate::Refuse(StatusCode::FORBIDDEN, _)
        ));
        assert!(matches!(
            post(&[("sec-fetch-site", "same-site")]),
            Gate::Refuse(StatusCode::FORBIDDEN, _)
        ));
    }

    #[test]
    fn comparisons_need_every_byte() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert!(keys().csrf_ok("tok"));
        assert!(!keys().csrf_ok(""));
        let k = Keys::random(8080);
        assert_eq!(k.secret.len(), 64);
        assert_ne!(k.secret, k.csrf);
        assert_eq!(k.cookie, "labctl_ui_8080");
    }
}
