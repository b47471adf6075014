//! `s3edge publish`, `rollback` and `releases`: argument parsing and output;
//! the work is in the library's `releases` module.

use crate::outln;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use s3edge::config;
use s3edge::origin::s3::EmbeddedEndpoint;
use s3edge::releases::bucket::{ReleaseBucket, ReleaseError};
use s3edge::releases::publish::{self, Activation, PublishRequest};
use s3edge::releases::{rollback, ReleaseId};

/// Which site's bucket, shared by the three commands.
#[derive(Args)]
pub struct SiteArgs {
    /// Directory of site files (`*.toml`).
    #[arg(long, env = "S3EDGE_SITES", default_value = "sites")]
    sites: PathBuf,
    /// The site's name (its file name without `.toml`).
    #[arg(long)]
    site: String,
    /// Where the embedded store listens, for sites with `endpoint = "embedded"`
    /// (the `serve` node's `--embedded-s3-listen`).
    #[arg(
        long,
        env = "S3EDGE_EMBEDDED_S3_LISTEN",
        default_value = "127.0.0.1:9000"
    )]
    embedded_s3_listen: SocketAddr,
}

/// `s3edge publish`.
#[derive(Args)]
pub struct PublishArgs {
    #[command(flatten)]
    site: SiteArgs,
    /// The folder to publish (its files become the release's keys).
    path: PathBuf,
    /// A node's admin listener to switch at once (repeatable), e.g. `http://127.0.0.1:9090`.
    #[arg(long)]
    admin: Vec<String>,
    /// The release id (default: UTC time and a short content hash).
    #[arg(long)]
    release: Option<String>,
    /// Upload only; the pointer stays (preview the release on a preview host).
    #[arg(long)]
    no_activate: bool,
    /// Publish hidden files too (names starting with `.` other than
    /// `.well-known`, and `__MACOSX`), which are left out by default.
    #[arg(long)]
    include_hidden: bool,
}

/// `s3edge rollback`.
#[derive(Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    site: SiteArgs,
    /// The release to make live (default: the one before the live release).
    id: Option<String>,
    /// A node's admin listener to switch at once (repeatable).
    #[arg(long)]
    admin: Vec<String>,
}

/// Exit code for invalid configuration or usage.
const EXIT_INVALID: u8 = 2;

fn fail(e: &ReleaseError) -> ExitCode {
    eprintln!("error: {e}");
    if e.is_usage() {
        ExitCode::from(EXIT_INVALID)
    } else {
        ExitCode::FAILURE
    }
}

/// Every `--admin` URL well formed, before anything changes.
fn check_admins(admins: &[String]) -> Result<(), ReleaseError> {
    for admin in admins {
        s3edge::releases::notify::admin_authority(admin)
            .map_err(|e| ReleaseError::Usage(e.to_string()))?;
    }
    Ok(())
}

fn parse_id(text: &str) -> Result<ReleaseId, ReleaseError> {
    ReleaseId::parse(text).map_err(|e| ReleaseError::Usage(e.to_string()))
}

/// Loads the site files and opens the named site's bucket.
async fn open(args: &SiteArgs) -> Result<ReleaseBucket, ReleaseError> {
    let sites = config::load_sites(&args.sites).map_err(|e| ReleaseError::Usage(e.to_string()))?;
    let Some(site) = sites.iter().find(|s| s.name == args.site) else {
        let names: Vec<&str> = sites.iter().map(|s| s.name.as_str()).collect();
        return Err(ReleaseError::Usage(format!(
            "no site named `{}` in {} (sites: {})",
            args.site,
            args.sites.display(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )));
    };
    let embedded = EmbeddedEndpoint {
        url: format!("http://{}", args.embedded_s3_listen),
        access_key: crate::embedded_credential("S3EDGE_EMBEDDED_ACCESS_KEY", crate::DEV_ACCESS_KEY),
        secret_key: crate::embedded_credential("S3EDGE_EMBEDDED_SECRET_KEY", crate::DEV_SECRET_KEY),
    };
    ReleaseBucket::open(site, Some(&embedded)).await
}

/// Runs a command's body on a tokio runtime; a runtime that cannot start
/// (no threads, no file descriptors left) is an error, not a panic.
fn block_on(body: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(body),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Nodes that did not switch: the pointer has moved, they follow within `check_every`.
fn report_nodes(failed: &[String]) -> ExitCode {
    if failed.is_empty() {
        return ExitCode::SUCCESS;
    }
    for line in failed {
        eprintln!("error: node did not switch: {line}");
    }
    eprintln!(
        "the pointer has moved: those nodes switch at their next check (releases.check_every)"
    );
    ExitCode::FAILURE
}

pub fn publish(args: PublishArgs) -> ExitCode {
    block_on(async move {
        let release = match args.release.as_deref().map(parse_id).transpose() {
            Ok(release) => release,
            Err(e) => return fail(&e),
        };
        if let Err(e) = check_admins(&args.admin) {
            return fail(&e);
        }
        let bucket = match open(&args.site).await {
            Ok(bucket) => bucket,
            Err(e) => return fail(&e),
        };
        let request = PublishRequest {
            folder: args.path,
            release,
            activation: if args.no_activate {
                Activation::UploadOnly
            } else {
                Activation::Activate
            },
            admins: args.admin,
            include_hidden: args.include_hidden,
        };
        let report = match publish::publish(&bucket, request).await {
            Ok(report) => report,
            Err(e) => return fail(&e),
        };
        let state = match report.activation {
            Activation::Activate => "is live",
            Activation::UploadOnly => "is uploaded (not live: --no-activate)",
        };
        outln!("release {} {state}", report.id);
        outln!(
            "{} uploaded ({} bytes), {} copied, {} deleted from the listing (previous: {})",
            report.uploaded,
            report.bytes_uploaded,
            report.copied,
            report.deleted,
            report.previous.as_deref().unwrap_or("none")
        );
        if let Some(first) = report.hidden.first() {
            let more = match report.hidden.len() {
                1 => String::new(),
                n => format!(" and {} more", n - 1),
            };
            outln!("left out, hidden: {first}{more} (--include-hidden publishes them)");
        }
        report_nodes(&report.nodes_failed)
    })
}

pub fn rollback(args: RollbackArgs) -> ExitCode {
    block_on(async move {
        let target = match args.id.as_deref().map(parse_id).transpose() {
            Ok(target) => target,
            Err(e) => return fail(&e),
        };
        if let Err(e) = check_admins(&args.admin) {
            return fail(&e);
        }
        let bucket = match open(&args.site).await {
            Ok(bucket) => bucket,
            Err(e) => return fail(&e),
        };
        match rollback::rollback(&bucket, target, &args.admin).await {
            Ok(report) => {
                match &report.from {
                    Some(from) => outln!("release {} is live (was {})", report.to, from),
                    None => outln!("release {} is live (no release was)", report.to),
                }
                report_nodes(&report.nodes_failed)
            }
            Err(e) => fail(&e),
        }
    })
}

pub fn releases(args: SiteArgs) -> ExitCode {
    block_on(async move {
        let bucket = match open(&args).await {
            Ok(bucket) => bucket,
            Err(e) => return fail(&e),
        };
        match rollback::list(&bucket).await {
            Ok(list) => {
                for listed in list {
                    let created = listed
                        .release
                        .created
                        .map(|t| {
                            time::OffsetDateTime::from(t)
                                .format(&time::format_description::well_known::Rfc3339)
                                .unwrap_or_default()
                        })
                        .unwrap_or_else(|| "-".to_string());
                    let mark = if listed.live { "* " } else { "  " };
                    let live = if listed.live { "  (live)" } else { "" };
                    outln!("{mark}{}  {created}{live}", listed.release.id);
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        }
    })
}
