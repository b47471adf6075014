//! The ACME figures on `/metrics` (Prometheus text), rendered from the manager's
//! state so the admin endpoint needs one call.

use std::fmt::Write as _;
use std::time::UNIX_EPOCH;

use super::Acme;

/// `s3edge_certificate_expiry_seconds{site}`: when each ACME certificate in
/// service expires, in seconds since the Unix epoch (as the blackbox
/// exporter's `probe_ssl_earliest_cert_expiry`; alert on `... - time() < 14 *
/// 86400`). Then the orders obtained and the failed attempts since start.
pub fn render(acme: &Acme) -> String {
    let mut out = String::new();
    out.push_str("# HELP s3edge_certificate_expiry_seconds When the site's ACME certificate in service expires (Unix time).\n");
    out.push_str("# TYPE s3edge_certificate_expiry_seconds gauge\n");
    for (site, expiry) in acme.expiries() {
        let seconds = expiry.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let _ = writeln!(
            out,
            "s3edge_certificate_expiry_seconds{{site=\"{}\"}} {seconds}",
            site.replace('\\', "\\\\").replace('"', "\\\"")
        );
    }
    out.push_str(
        "# HELP s3edge_acme_orders_total Certificates obtained from the ACME CA since start.\n",
    );
    out.push_str("# TYPE s3edge_acme_orders_total counter\n");
    let _ = writeln!(out, "s3edge_acme_orders_total {}", acme.orders());
    out.push_str(
        "# HELP s3edge_acme_failures_total Failed ACME attempts (each is retried with backoff).\n",
    );
    out.push_str("# TYPE s3edge_acme_failures_total counter\n");
    let _ = writeln!(out, "s3edge_acme_failures_total {}", acme.failures());
    out
}
