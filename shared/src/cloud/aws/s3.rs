//! S3 through the AWS SDK. Path-style addressing when an endpoint override points
//! at the emulator.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_sdk_s3::Client;

use super::{classify, AwsSettings, PerRegion};
use crate::cloud::{CloudErrorKind, CloudResult, ObjectStore};

/// An S3 client for the staging bucket's region.
pub struct S3Adapter {
    clients: PerRegion<Client>,
    region: String,
}

impl S3Adapter {
    pub fn new(settings: AwsSettings, region: &str) -> Self {
        S3Adapter {
            clients: PerRegion::new(settings, |config, settings| {
                let conf = aws_sdk_s3::config::Builder::from(config)
                    .force_path_style(settings.endpoint.is_some())
                    .build();
                Client::from_conf(conf)
            }),
            region: region.to_owned(),
        }
    }

    async fn client(&self) -> std::sync::Arc<Client> {
        self.clients.get(&self.region).await
    }

    /// Creates the bucket if it is missing (the emulator, or a first local run).
    pub async fn ensure_bucket(&self, bucket: &str) -> CloudResult<()> {
        let client = self.client().await;
        let mut req = client.create_bucket().bucket(bucket);
        if self.region != "us-east-1" {
            req = req.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                        self.region.as_str(),
                    ))
                    .build(),
            );
        }
        match req.send().await.map_err(|e| classify("CreateBucket", e)) {
            Ok(_) => Ok(()),
            Err(e) if e.kind == CloudErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl ObjectStore for S3Adapter {
    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> CloudResult<()> {
        self.client()
            .await
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("PutObject", e))
    }

    async fn get(&self, bucket: &str, key: &str) -> CloudResult<Option<Vec<u8>>> {
        let out = self
            .client()
            .await
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await;
        match out.map_err(|e| classify("GetObject", e)) {
            Ok(o) => {
                let bytes = o.body.collect().await.map_err(|e| crate::cloud::CloudError {
                    op: "GetObject",
                    kind: CloudErrorKind::Transient,
                    code: "BodyRead".into(),
                    message: e.to_string(),
                    source: Some(Box::new(e)),
                })?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(e) if e.kind == CloudErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, bucket: &str, prefix: &str) -> CloudResult<Vec<String>> {
        let client = self.client().await;
        let mut pages = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("ListObjectsV2", e))?;
            out.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        }
        Ok(out)
    }

    async fn delete(&self, bucket: &str, keys: &[String]) -> CloudResult<()> {
        let client = self.client().await;
        for chunk in keys.chunks(1000) {
            let objects = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build().expect("key is set"))
                .collect();
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .expect("objects are set");
            client
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| classify("DeleteObjects", e))?;
        }
        Ok(())
    }
}
