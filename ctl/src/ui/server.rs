//! The dashboard's HTTP server: routes, the shared state every handler gets, the gate every
//! request passes first (see `auth`), the security headers on every answer, and the one mapping
//! from coordinator errors to HTTP status codes and error pages.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use lab_proto::v1::operator_service_client::OperatorServiceClient;
use lab_proto::v1::{Role, WhoAmIRequest};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::auth::{self, Gate, Keys};
use super::html::{self, Esc, Frame, Nav, Who};
use super::{actions, assets, pages};

/// The coordinator client every handler uses (cheap to clone: one multiplexed connection).
pub type Client = OperatorServiceClient<Channel>;

/// What every handler shares.
#[derive(Debug)]
pub struct Ui {
    /// Dialled with the labctl context's identity.
    pub client: Client,
    /// This run's secret, session and CSRF token.
    pub keys: Keys,
    /// labctl context name (shown in the header).
    pub context: String,
    /// The coordinator's address from the context.
    pub coordinator: String,
    /// Accepted `Host` values; None when bound to a non-loopback address on purpose.
    pub hosts: Option<Vec<String>>,
    /// Ends live streams when labctl stops.
    pub shutdown: CancellationToken,
}

impl Ui {
    /// A client for one request.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Who the context authenticates as, asked for each page (a role change applies at once).
    pub async fn who(&self) -> Result<Who, PageError> {
        let me = self.client().who_am_i(WhoAmIRequest {}).await?.into_inner();
        let role = me.role();
        Ok(Who {
            user: me.user,
            role: match role {
                Role::Admin => "admin",
                Role::Operator => "operator",
                Role::Viewer => "viewer",
                Role::Unspecified => "unknown",
            },
            can_act: matches!(role, Role::Admin | Role::Operator),
            context: self.context.clone(),
        })
    }

    /// The frame of a page.
    pub fn frame<'a>(&'a self, title: &'a str, nav: Nav, who: &'a Who) -> Frame<'a> {
        Frame {
            title,
            nav,
            who,
            csrf: &self.keys.csrf,
        }
    }
}

/// Why a page or action could not be served.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The coordinator refused or failed.
    #[error("{}", .0.message())]
    Coordinator(#[from] tonic::Status),
    /// Bad input in the URL or form.
    #[error("{0}")]
    BadRequest(String),
    /// Refused here before anything was sent (e.g. a missing CSRF token).
    #[error("{0}")]
    Forbidden(String),
}

impl PageError {
    fn status(&self) -> StatusCode {
        use tonic::Code;
        match self {
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::Forbidden(_) => StatusCode::FORBIDDEN,
            PageError::Coordinator(s) if std::error::Error::source(s).is_some() => {
                StatusCode::BAD_GATEWAY
            }
            PageError::Coordinator(s) => match s.code() {
                Code::PermissionDenied => StatusCode::FORBIDDEN,
                Code::Unauthenticated => StatusCode::BAD_GATEWAY,
                Code::NotFound => StatusCode::NOT_FOUND,
                Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
                    StatusCode::BAD_REQUEST
                }
                Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
                Code::ResourceExhausted => StatusCode::SERVICE_UNAVAILABLE,
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                    StatusCode::BAD_GATEWAY
                }
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            PageError::Coordinator(s) if std::error::Error::source(s).is_some() => format!(
                "cannot reach the coordinator: {}; labctl ui keeps trying with each request",
                crate::failure::from_status(s.clone())
            ),
            e => e.to_string(),
        };
        error_page(status, &message)
    }
}

/// A small page for an error (it needs no coordinator).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"color-scheme\" content=\"light dark\"><title>{code} · labfleet</title>\
<link rel=\"stylesheet\" href=\"/assets/ui.css?v={version}\"></head>\
<body><main id=\"main\"><h1>{code}</h1><p class=\"error\" id=\"error\">{message}</p>\
<p><a href=\"/\">Overview</a></p></main></body></html>\n",
        code = status,
        version = env!("CARGO_PKG_VERSION"),
        message = Esc(message),
    );
    (status, Html(body)).into_response()
}

/// A page's result.
pub type PageResult = Result<Html<String>, PageError>;

/// The routes.
pub fn router(ui: Arc<Ui>) -> Router {
    Router::new()
        .route("/", get(pages::overview::get))
        .route("/nodes", get(pages::nodes::get))
        .route("/nodes/{name}", get(pages::node::get))
        .route("/jobs", get(pages::jobs::get))
        .route("/jobs/{id}", get(pages::job::get))
        .route("/jobs/{id}/events", get(super::live::get))
        .route("/jobs/{id}/cancel", post(actions::cancel))
        .route("/jobs/{id}/rerun", post(actions::rerun))
        .route("/backups", get(pages::backups::get))
        .route("/schedules", get(pages::schedules::get))
        .route("/schedules/{name}/pause", post(actions::pause))
        .route("/schedules/{name}/resume", post(actions::resume))
        .route("/topology", get(pages::topology::get))
        .route("/assets/{file}", get(assets::get))
        .fallback(|| async { error_page(StatusCode::NOT_FOUND, "no such page") })
        .layer(axum::middleware::from_fn_with_state(ui.clone(), guard))
        .with_state(ui)
}

/// The gate, then security headers on whatever the handler answered.
async fn guard(State(ui): State<Arc<Ui>>, req: Request, next: Next) -> Response {
    let decision = auth::gate(
        &ui.keys,
        req.method(),
        req.uri(),
        req.headers(),
        ui.hosts.as_deref(),
    );
    let mut response = match decision {
        Gate::Pass => next.run(req).await,
        Gate::SignIn {
            set_cookie,
            location,
        } => {
            let mut r = Redirect::to(&location).into_response();
            if let Ok(v) = HeaderValue::from_str(&set_cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Gate::Refuse(status, message) => error_page(status, message),
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not no-referrer: with it, browsers send `Origin: null` on the dashboard's own POSTs.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Serves until `shutdown`; live streams end with it.
pub async fn serve(listener: TcpListener, ui: Arc<Ui>) -> anyhow::Result<()> {
    let shutdown = ui.shutdown.clone();
    axum::serve(listener.tap_io(lab_proto::net::set_nodelay), router(ui))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

/// The frame and body as a complete page.
pub fn render(frame: &Frame<'_>, body: &str) -> Html<String> {
    Html(html::page(frame, body))
}
