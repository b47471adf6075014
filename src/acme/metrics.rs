//! The ACME figures on `/metrics` (Prometheus text), rendered from the manager's
//! state so the admin endpoint needs one call.

use std::fmt::Write as _;

use super::Acme;

/// The orders obtained and the failed attempts since start. (Each ACME
/// certificate's expiry is in `s3edge_certificate_expiry_seconds{site}` with
/// the file certificates', and whether it is valid in
/// `s3edge_acme_certificate_valid{site}`, from `status::readings`.)
pub fn render(acme: &Acme) -> String {
    let mut out = String::new();
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
