//! Self-test of the moto_server harness used by the AWS integration tests.

use crate::support::moto;

use aws_sdk_s3::primitives::ByteStream;

#[tokio::test]
async fn moto_starts_and_serves_s3() {
    let server = moto::MotoServer::start();
    let conf = server.sdk_config().await;
    let s3 = server.s3_client(&conf);

    let bucket = moto::unique("harness");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");

    let key = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/01/file name+1.json.gz";
    let body: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    s3.put_object()
        .bucket(&bucket)
        .key(key)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put object");

    let got = s3
        .get_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .expect("get object")
        .body
        .collect()
        .await
        .expect("read body")
        .into_bytes();
    assert_eq!(got.as_ref(), body.as_slice());
}

#[test]
fn unique_names_differ_and_are_lowercase() {
    let a = moto::unique("Trail");
    let b = moto::unique("Trail");
    assert_ne!(a, b);
    assert_eq!(a, a.to_ascii_lowercase());
    assert!(a.starts_with("trail-"));
}
