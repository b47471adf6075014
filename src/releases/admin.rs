//! `POST /releases/switch` on the admin listener: re-read a site's pointer now
//! and switch to the release it names. `publish` and `rollback` call it on the
//! nodes given with `--admin`, so those nodes serve the new release before the
//! command returns. Same bearer-token rule as `/purge`.
//!
//! Body: `{"site": "NAME", "release": "ID"}` (`release` optional: the release
//! the caller expects the pointer to name). Answers 200 `{"site", "live"}`; 409
//! when the pointer names another release or one without files; 404 for an
//! unknown site; 400 for a site without `[releases]` or a bad body; 502 when the
//! bucket cannot be read.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::watch::{self, PointerError, Revalidate};
use crate::admin::change_body;
use crate::state::AppState;

/// The admin route's path.
pub const SWITCH_PATH: &str = "/releases/switch";

/// Registers `POST /releases/switch`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(crate::admin::only(
        SWITCH_PATH,
        "POST",
        web::post().to(switch),
    ));
}

/// The body of `POST /releases/switch`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchRequest {
    pub site: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

fn answer(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

async fn switch(req: HttpRequest, body: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    let body = match change_body(&req, body, state.admin_token.as_deref()).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let request: SwitchRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                serde_json::json!({ "error": format!("invalid switch request: {e}") }),
            )
        }
    };
    let sites = state.sites();
    let Some(site) = sites.sites.iter().find(|s| s.name() == request.site) else {
        return answer(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "error": format!("no site named `{}`", request.site) }),
        );
    };
    let result = watch::check(site, Revalidate::Always).await;
    watch::log(site, &result);
    let live = match result {
        Ok(check) => check.live().clone(),
        Err(e) => {
            let status = match &e {
                PointerError::NoReleases => StatusCode::BAD_REQUEST,
                PointerError::Origin(_) => StatusCode::BAD_GATEWAY,
                _ => StatusCode::CONFLICT,
            };
            return answer(status, serde_json::json!({ "error": e.to_string() }));
        }
    };
    if let Some(expected) = request.release.filter(|r| r != live.as_str()) {
        return answer(
            StatusCode::CONFLICT,
            serde_json::json!({
                "error": format!("the pointer names release `{live}`, not `{expected}`"),
                "live": live.as_str(),
            }),
        );
    }
    answer(
        StatusCode::OK,
        serde_json::json!({ "site": site.name(), "live": live.as_str() }),
    )
}
