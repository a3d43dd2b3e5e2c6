//! The routes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use axum_session_memcache::{Session, SessionError};
use serde::Deserialize;

use crate::config::Health;
use crate::{csrf, pages};

const USER: &str = "user";
const VISITS: &str = "visits";
const FLASH: &str = "message";

/// The app's routes; the session layer is added by the caller.
pub(crate) fn router(health: Health) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login))
        .route("/dashboard", get(dashboard))
        .route("/logout", post(logout))
        .route("/healthz", get(healthz))
        .with_state(health)
}

fn flash_message(session: &Session) -> Result<Option<String>, SessionError> {
    session.get::<String>(FLASH)
}

async fn home(session: Session) -> Result<Html<String>, SessionError> {
    let visits = session.get::<u64>(VISITS)?.unwrap_or(0) + 1;
    session.insert(VISITS, visits)?;
    let user = session.get::<String>(USER)?;
    let csrf = if user.is_some() {
        csrf::token(&session)?
    } else {
        String::new()
    };
    let flash = flash_message(&session)?;
    Ok(Html(
        pages::home(visits, user.as_deref(), flash.as_deref(), &csrf).into_string(),
    ))
}

async fn login_form(session: Session) -> Result<Response, SessionError> {
    if session.contains_key(USER) {
        return Ok(Redirect::to("/dashboard").into_response());
    }
    let csrf = csrf::token(&session)?;
    let flash = flash_message(&session)?;
    Ok(Html(pages::login(flash.as_deref(), &csrf).into_string()).into_response())
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    csrf: String,
}

async fn login(session: Session, Form(form): Form<LoginForm>) -> Result<Response, SessionError> {
    if !csrf::is_valid(&session, &form.csrf)? {
        return Ok(forbidden());
    }
    let username = form.username.trim();
    if username.is_empty() || username.chars().count() > 64 || form.password != pages::PASSWORD {
        session.flash(FLASH, "Wrong username or password.")?;
        return Ok(Redirect::to("/login").into_response());
    }
    // A new id on every change of privilege: a session id planted before login is useless.
    session.regenerate_id(true)?;
    csrf::rotate(&session)?;
    session.insert(USER, username)?;
    session.flash(FLASH, format!("Welcome, {username}"))?;
    Ok(Redirect::to("/dashboard").into_response())
}

async fn dashboard(session: Session) -> Result<Response, SessionError> {
    let Some(user) = session.get::<String>(USER)? else {
        session.flash(FLASH, "Please log in to see the dashboard.")?;
        return Ok(Redirect::to("/login").into_response());
    };
    let visits = session.get::<u64>(VISITS)?.unwrap_or(0);
    let csrf = csrf::token(&session)?;
    let flash = flash_message(&session)?;
    Ok(
        Html(pages::dashboard(&user, visits, flash.as_deref(), &csrf).into_string())
            .into_response(),
    )
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf: String,
}

async fn logout(session: Session, Form(form): Form<LogoutForm>) -> Result<Response, SessionError> {
    if !csrf::is_valid(&session, &form.csrf)? {
        return Ok(forbidden());
    }
    session.destroy();
    Ok(Redirect::to("/").into_response())
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(pages::forbidden().into_string()),
    )
        .into_response()
}

/// `200 {"sessions":"memcached","memcached":"ok"}` when memcached answers, `503` with
/// `"memcached":"unreachable"` when it does not (the reason is logged).
async fn healthz(State(health): State<Health>) -> Response {
    match health {
        Health::InProcess => Json(serde_json::json!({ "sessions": "in-process" })).into_response(),
        Health::Memcached(storage) => {
            match storage.ping().await {
                Ok(()) => Json(serde_json::json!({ "sessions": "memcached", "memcached": "ok" }))
                    .into_response(),
                Err(error) => {
                    // The details (addresses, causes) go to the log, not to anonymous clients.
                    tracing::warn!(%error, "health check: memcached does not answer");
                    (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(serde_json::json!({ "sessions": "memcached", "memcached": "unreachable" })),
                )
                    .into_response()
                }
            }
        }
    }
}
