//! Validation of the bucket configurations the store keeps itself (website, CORS),
//! with the checks AWS S3 applies on `PutBucketWebsite` and `PutBucketCors`.

use s3s::dto::{CORSConfiguration, WebsiteConfiguration};
use s3s::{s3_error, S3Error};

/// HTTP methods a CORS rule may allow (AWS: "GET, PUT, HEAD, POST, and DELETE").
const CORS_METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "POST", "DELETE"];

/// Checks a website configuration as AWS does before storing it:
/// - `RedirectAllRequestsTo` excludes every other element;
/// - without it, `IndexDocument` is required and its suffix is non-empty with no `/`;
/// - a redirect sets at most one of `ReplaceKeyWith` / `ReplaceKeyPrefixWith`, and a
///   `HttpRedirectCode` that is a 3xx code.
pub(crate) fn validate_website(config: &WebsiteConfiguration) -> Result<(), S3Error> {
    if config.redirect_all_requests_to.is_some() {
        if config.index_document.is_some()
            || config.error_document.is_some()
            || config.routing_rules.is_some()
        {
            return Err(s3_error!(
                InvalidArgument,
                "RedirectAllRequestsTo cannot be provided in conjunction with other Routing Rules."
            ));
        }
        return Ok(());
    }
    let Some(index) = &config.index_document else {
        return Err(s3_error!(
            InvalidArgument,
            "A value for IndexDocument Suffix must be provided if RedirectAllRequestsTo is empty"
        ));
    };
    if index.suffix.is_empty() || index.suffix.contains('/') {
        return Err(s3_error!(
            InvalidArgument,
            "The IndexDocument Suffix is not well formed"
        ));
    }
    for rule in config.routing_rules.iter().flatten() {
        let redirect = &rule.redirect;
        if redirect.replace_key_with.is_some() && redirect.replace_key_prefix_with.is_some() {
            return Err(s3_error!(
                InvalidArgument,
                "You can only define ReplaceKeyPrefix or ReplaceKey but not both."
            ));
        }
        if let Some(code) = &redirect.http_redirect_code {
            if !matches!(code.parse::<u16>(), Ok(300..=399)) {
                return Err(s3_error!(
                    InvalidArgument,
                    "The provided HTTP redirect code ({code}) is not valid."
                ));
            }
        }
    }
    Ok(())
}

/// Checks a CORS configuration: at least one rule, each with an origin and only the
/// methods S3 allows.
pub(crate) fn validate_cors(config: &CORSConfiguration) -> Result<(), S3Error> {
    if config.cors_rules.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "A CORS configuration needs at least one CORSRule"
        ));
    }
    for rule in &config.cors_rules {
        if rule.allowed_origins.is_empty() || rule.allowed_methods.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "A CORSRule needs an AllowedOrigin and an AllowedMethod"
            ));
        }
        if let Some(method) = rule
            .allowed_methods
            .iter()
            .find(|m| !CORS_METHODS.contains(&m.as_str()))
        {
            return Err(s3_error!(
                InvalidRequest,
                "Found unsupported HTTP method in CORS config. Unsupported method is {method}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use s3s::dto::{
        CORSRule, ErrorDocument, IndexDocument, Redirect, RedirectAllRequestsTo, RoutingRule,
        WebsiteConfiguration,
    };

    use super::*;

    fn index(suffix: &str) -> Option<IndexDocument> {
        Some(IndexDocument {
            suffix: suffix.into(),
        })
    }

    fn redirect_rule(code: Option<&str>, key: Option<&str>, prefix: Option<&str>) -> RoutingRule {
        RoutingRule {
            condition: None,
            redirect: Redirect {
                http_redirect_code: code.map(Into::into),
                replace_key_with: key.map(Into::into),
                replace_key_prefix_with: prefix.map(Into::into),
                ..Default::default()
            },
        }
    }

    #[test]
    fn website_configurations_are_checked_like_aws() {
        let redirect_all = Some(RedirectAllRequestsTo {
            host_name: "example.com".into(),
            protocol: None,
        });
        let cases: Vec<(&str, WebsiteConfiguration, bool)> = vec![
            (
                "index only is valid",
                WebsiteConfiguration {
                    index_document: index("index.html"),
                    ..Default::default()
                },
                true,
            ),
            (
                "index and error document are valid",
                WebsiteConfiguration {
                    index_document: index("index.html"),
                    error_document: Some(ErrorDocument {
                        key: "404.html".into(),
                    }),
                    ..Default::default()
                },
                true,
            ),
            (
                "redirect-all alone is valid",
                WebsiteConfiguration {
                    redirect_all_requests_to: redirect_all.clone(),
                    ..Default::default()
                },
                true,
            ),
            (
                "redirect-all with an index is rejected",
                WebsiteConfiguration {
                    redirect_all_requests_to: redirect_all,
                    index_document: index("index.html"),
                    ..Default::default()
                },
                false,
            ),
            (
                "no index nor redirect-all is rejected",
                WebsiteConfiguration::default(),
                false,
            ),
            (
                "an empty suffix is rejected",
                WebsiteConfiguration {
                    index_document: index(""),
                    ..Default::default()
                },
                false,
            ),
            (
                "a suffix with a slash is rejected",
                WebsiteConfiguration {
                    index_document: index("a/index.html"),
                    ..Default::default()
                },
                false,
            ),
            (
                "a 301 routing rule is valid",
                WebsiteConfiguration {
                    index_document: index("index.html"),
                    routing_rules: Some(vec![redirect_rule(Some("301"), None, Some("new/"))]),
                    ..Default::default()
                },
                true,
            ),
            (
                "a 200 redirect code is rejected",
                WebsiteConfiguration {
                    index_document: index("index.html"),
                    routing_rules: Some(vec![redirect_rule(Some("200"), None, None)]),
                    ..Default::default()
                },
                false,
            ),
            (
                "replace key and replace prefix together are rejected",
                WebsiteConfiguration {
                    index_document: index("index.html"),
                    routing_rules: Some(vec![redirect_rule(None, Some("a"), Some("b"))]),
                    ..Default::default()
                },
                false,
            ),
        ];
        for (name, config, valid) in cases {
            assert_eq!(validate_website(&config).is_ok(), valid, "{name}");
        }
    }

    #[test]
    fn cors_rules_need_origins_and_s3_methods() {
        let rule = |methods: &[&str], origins: &[&str]| CORSRule {
            allowed_methods: methods.iter().map(|m| (*m).into()).collect(),
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            ..Default::default()
        };
        let ok = CORSConfiguration {
            cors_rules: vec![rule(&["GET", "HEAD"], &["*"])],
        };
        assert!(validate_cors(&ok).is_ok());
        assert!(validate_cors(&CORSConfiguration { cors_rules: vec![] }).is_err());
        assert!(validate_cors(&CORSConfiguration {
            cors_rules: vec![rule(&["PATCH"], &["*"])]
        })
        .is_err());
        assert!(validate_cors(&CORSConfiguration {
            cors_rules: vec![rule(&["GET"], &[])]
        })
        .is_err());
    }
}
