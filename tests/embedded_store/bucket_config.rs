//! Buckets, and their website and CORS configurations.

use super::harness::*;

#[tokio::test]
async fn the_website_configuration_round_trips_and_is_not_a_bucket_or_an_object() {
    let h = harness().await;
    let err =
        h.s3.get_bucket_website()
            .bucket(BUCKET)
            .send()
            .await
            .expect_err("none yet");
    assert_eq!(
        (status(&err), err.code()),
        (404, Some("NoSuchWebsiteConfiguration"))
    );

    let rule = RoutingRule::builder()
        .condition(
            Condition::builder()
                .key_prefix_equals("docs/")
                .http_error_code_returned_equals("404")
                .build(),
        )
        .redirect(
            Redirect::builder()
                .protocol(Protocol::Https)
                .host_name("docs.example.com")
                .replace_key_prefix_with("")
                .http_redirect_code("301")
                .build(),
        )
        .build();
    let website = WebsiteConfiguration::builder()
        .index_document(
            IndexDocument::builder()
                .suffix("index.html")
                .build()
                .expect("index"),
        )
        .error_document(
            ErrorDocument::builder()
                .key("404.html")
                .build()
                .expect("error doc"),
        )
        .routing_rules(rule.clone())
        .build();
    h.s3.put_bucket_website()
        .bucket(BUCKET)
        .website_configuration(website)
        .send()
        .await
        .expect("put website");
    let got =
        h.s3.get_bucket_website()
            .bucket(BUCKET)
            .send()
            .await
            .expect("get website");
    assert_eq!(got.index_document().map(|d| d.suffix()), Some("index.html"));
    assert_eq!(got.error_document().map(|d| d.key()), Some("404.html"));
    assert_eq!(got.routing_rules(), [rule]);

    let buckets = h.s3.list_buckets().send().await.expect("list buckets");
    assert_eq!(
        buckets
            .buckets()
            .iter()
            .filter_map(|b| b.name())
            .collect::<Vec<_>>(),
        [BUCKET]
    );
    let objects =
        h.s3.list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .expect("list objects");
    assert!(objects.contents().is_empty());

    let redirect_all = WebsiteConfiguration::builder()
        .redirect_all_requests_to(
            RedirectAllRequestsTo::builder()
                .host_name("example.com")
                .protocol(Protocol::Https)
                .build()
                .expect("redirect"),
        )
        .build();
    h.s3.put_bucket_website()
        .bucket(BUCKET)
        .website_configuration(redirect_all)
        .send()
        .await
        .expect("put");
    let got =
        h.s3.get_bucket_website()
            .bucket(BUCKET)
            .send()
            .await
            .expect("get");
    let all = got.redirect_all_requests_to().expect("redirect all");
    assert_eq!(
        (all.host_name(), all.protocol()),
        ("example.com", Some(&Protocol::Https))
    );
    assert!(got.index_document().is_none());

    h.s3.delete_bucket_website()
        .bucket(BUCKET)
        .send()
        .await
        .expect("delete website");
    let err =
        h.s3.get_bucket_website()
            .bucket(BUCKET)
            .send()
            .await
            .expect_err("deleted");
    assert_eq!(err.code(), Some("NoSuchWebsiteConfiguration"));
    let err =
        h.s3.get_bucket_website()
            .bucket("nowhere")
            .send()
            .await
            .expect_err("no bucket");
    assert_eq!(err.code(), Some("NoSuchBucket"));
}

#[tokio::test]
async fn the_cors_configuration_round_trips() {
    let h = harness().await;
    let err =
        h.s3.get_bucket_cors()
            .bucket(BUCKET)
            .send()
            .await
            .expect_err("none yet");
    assert_eq!(
        (status(&err), err.code()),
        (404, Some("NoSuchCORSConfiguration"))
    );
    let rule = CorsRule::builder()
        .allowed_origins("https://example.com")
        .allowed_methods("GET")
        .allowed_methods("HEAD")
        .allowed_headers("*")
        .expose_headers("ETag")
        .max_age_seconds(600)
        .build()
        .expect("rule");
    let cors = CorsConfiguration::builder()
        .cors_rules(rule.clone())
        .build()
        .expect("cors");
    h.s3.put_bucket_cors()
        .bucket(BUCKET)
        .cors_configuration(cors)
        .send()
        .await
        .expect("put cors");
    let got =
        h.s3.get_bucket_cors()
            .bucket(BUCKET)
            .send()
            .await
            .expect("get cors");
    assert_eq!(got.cors_rules(), [rule]);
    h.s3.delete_bucket_cors()
        .bucket(BUCKET)
        .send()
        .await
        .expect("delete cors");
    let err =
        h.s3.get_bucket_cors()
            .bucket(BUCKET)
            .send()
            .await
            .expect_err("deleted");
    assert_eq!(err.code(), Some("NoSuchCORSConfiguration"));
}

#[tokio::test]
async fn buckets_are_created_found_located_listed_and_deleted_only_when_empty() {
    let h = harness().await;
    h.s3.create_bucket()
        .bucket("second")
        .send()
        .await
        .expect("create");
    let err =
        h.s3.create_bucket()
            .bucket("second")
            .send()
            .await
            .expect_err("exists");
    assert_eq!(err.code(), Some("BucketAlreadyOwnedByYou"));
    h.s3.head_bucket()
        .bucket("second")
        .send()
        .await
        .expect("head bucket");
    let location =
        h.s3.get_bucket_location()
            .bucket("second")
            .send()
            .await
            .expect("location");
    assert!(
        location
            .location_constraint()
            .is_none_or(|c| c.as_str().is_empty()),
        "us-east-1"
    );
    let listed = h.s3.list_buckets().send().await.expect("list buckets");
    let mut names: Vec<_> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    names.sort_unstable();
    assert_eq!(names, ["second", BUCKET]);

    h.s3.put_object()
        .bucket("second")
        .key("a/b.txt")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put");
    let err =
        h.s3.delete_bucket()
            .bucket("second")
            .send()
            .await
            .expect_err("not empty");
    assert_eq!((status(&err), err.code()), (409, Some("BucketNotEmpty")));
    h.s3.delete_object()
        .bucket("second")
        .key("a/b.txt")
        .send()
        .await
        .expect("delete object");
    h.s3.delete_bucket()
        .bucket("second")
        .send()
        .await
        .expect("delete empty bucket");
    let err =
        h.s3.head_bucket()
            .bucket("second")
            .send()
            .await
            .expect_err("gone");
    assert_eq!(status(&err), 404);
}
