//! S3 through the AWS SDK. Path-style addressing when an endpoint override points
//! at the emulator.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, CompletedMultipartUpload, CompletedPart,
    Delete, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    NoncurrentVersionExpiration, ObjectIdentifier,
};
use aws_sdk_s3::Client;
use futures_util::StreamExt;

use super::{classify, AwsSettings, PerRegion};
use crate::cloud::{
    CloudError, CloudErrorKind, CloudResult, ExpiryRule, LifecycleMerge, ObjectBody, ObjectMeta, ObjectPage,
    ObjectStore, PendingUpload,
};

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
        let Some(mut body) = self.get_body(bucket, key).await? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(body.meta.size as usize);
        while let Some(chunk) = body.next_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(Some(out))
    }

    async fn get_body(&self, bucket: &str, key: &str) -> CloudResult<Option<ObjectBody>> {
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
                let meta = ObjectMeta {
                    key: key.to_owned(),
                    size: o.content_length().unwrap_or_default().max(0) as u64,
                    etag: o.e_tag().unwrap_or_default().to_owned(),
                };
                let chunks = futures_util::stream::unfold(o.body, |mut body| async move {
                    match body.next().await? {
                        Ok(bytes) => Some((Ok(bytes.to_vec()), body)),
                        Err(e) => Some((Err(body_error(e)), body)),
                    }
                })
                .boxed();
                Ok(Some(ObjectBody { meta, chunks }))
            }
            Err(e) if e.kind == CloudErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, bucket: &str, prefix: &str) -> CloudResult<Vec<String>> {
        let mut out = Vec::new();
        let mut next = None;
        loop {
            let page = self.list_page(bucket, prefix, next).await?;
            out.extend(page.objects.into_iter().map(|o| o.key));
            match page.next {
                Some(token) => next = Some(token),
                None => return Ok(out),
            }
        }
    }

    async fn list_page(&self, bucket: &str, prefix: &str, next: Option<String>) -> CloudResult<ObjectPage> {
        let page = self
            .client()
            .await
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(next)
            .send()
            .await
            .map_err(|e| classify("ListObjectsV2", e))?;
        let objects = page
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ObjectMeta {
                    key: o.key()?.to_owned(),
                    size: o.size().unwrap_or_default().max(0) as u64,
                    etag: o.e_tag().unwrap_or_default().to_owned(),
                })
            })
            .collect();
        let next = match page.is_truncated() {
            Some(true) => page.next_continuation_token().map(str::to_owned),
            _ => None,
        };
        Ok(ObjectPage { objects, next })
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

    async fn copy(&self, bucket: &str, from: &str, to: &str) -> CloudResult<()> {
        self.client()
            .await
            .copy_object()
            .bucket(bucket)
            .key(to)
            .copy_source(format!("{bucket}/{}", copy_source_key(from)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("CopyObject", e))
    }

    async fn create_multipart(&self, bucket: &str, key: &str) -> CloudResult<String> {
        let out = self
            .client()
            .await
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify("CreateMultipartUpload", e))?;
        out.upload_id().map(str::to_owned).ok_or_else(|| CloudError {
            op: "CreateMultipartUpload",
            kind: CloudErrorKind::Permanent,
            code: "NoUploadId".into(),
            message: "the answer carried no upload id".into(),
            source: None,
        })
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
    ) -> CloudResult<String> {
        let out = self
            .client()
            .await
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify("UploadPart", e))?;
        Ok(out.e_tag().unwrap_or_default().to_owned())
    }

    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(i32, String)],
    ) -> CloudResult<()> {
        let parts = parts
            .iter()
            .map(|(n, etag)| CompletedPart::builder().part_number(*n).e_tag(etag).build())
            .collect();
        self.client()
            .await
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("CompleteMultipartUpload", e))
    }

    async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> CloudResult<()> {
        let out = self
            .client()
            .await
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| classify("AbortMultipartUpload", e));
        match out {
            Ok(_) => Ok(()),
            Err(e) if e.kind == CloudErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn pending_uploads(&self, bucket: &str, prefix: &str) -> CloudResult<Vec<PendingUpload>> {
        let client = self.client().await;
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker) = (None, None);
        loop {
            let page = client
                .list_multipart_uploads()
                .bucket(bucket)
                .prefix(prefix)
                .set_key_marker(key_marker)
                .set_upload_id_marker(id_marker)
                .send()
                .await
                .map_err(|e| classify("ListMultipartUploads", e))?;
            out.extend(page.uploads().iter().filter_map(|u| {
                Some(PendingUpload {
                    key: u.key()?.to_owned(),
                    upload_id: u.upload_id()?.to_owned(),
                    initiated_ms: u.initiated().and_then(|t| t.to_millis().ok()).unwrap_or_default(),
                })
            }));
            if page.is_truncated() != Some(true) {
                return Ok(out);
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() {
                return Ok(out);
            }
        }
    }

    async fn merge_lifecycle(&self, bucket: &str, ours: &[ExpiryRule]) -> CloudResult<LifecycleMerge> {
        let client = self.client().await;
        let (current, transition_default) = match client
            .get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| classify("GetBucketLifecycleConfiguration", e))
        {
            Ok(out) => (
                out.rules().to_vec(),
                out.transition_default_minimum_object_size().cloned(),
            ),
            Err(e) if e.code == "NoSuchLifecycleConfiguration" || e.kind == CloudErrorKind::NotFound => {
                (Vec::new(), None)
            }
            Err(e) => return Err(e),
        };
        let (owned, foreign): (Vec<LifecycleRule>, Vec<LifecycleRule>) = current
            .into_iter()
            .partition(|r| r.id().is_some_and(|id| id.starts_with(ExpiryRule::OWNED)));
        let foreign_ids = foreign
            .iter()
            .map(|r| r.id().unwrap_or("(no id)").to_owned())
            .collect();
        let wanted: Vec<LifecycleRule> = ours.iter().map(lifecycle_rule).collect();
        let same = owned.len() == wanted.len() && wanted.iter().all(|w| owned.contains(w));
        if same {
            return Ok(LifecycleMerge {
                changed: false,
                foreign: foreign_ids,
            });
        }
        // Others' rules go back exactly as S3 gave them, first and in their order.
        let rules: Vec<LifecycleRule> = foreign.into_iter().chain(wanted).collect();
        if rules.is_empty() {
            // S3 refuses an empty configuration: no rules is no configuration.
            client
                .delete_bucket_lifecycle()
                .bucket(bucket)
                .send()
                .await
                .map_err(|e| classify("DeleteBucketLifecycle", e))?;
            return Ok(LifecycleMerge {
                changed: true,
                foreign: foreign_ids,
            });
        }
        let config = BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .expect("rules are set");
        // The bucket-wide setting goes back as it was, too.
        client
            .put_bucket_lifecycle_configuration()
            .bucket(bucket)
            .lifecycle_configuration(config)
            .set_transition_default_minimum_object_size(transition_default)
            .send()
            .await
            .map_err(|e| classify("PutBucketLifecycleConfiguration", e))?;
        Ok(LifecycleMerge {
            changed: true,
            foreign: foreign_ids,
        })
    }
}

fn lifecycle_rule(rule: &ExpiryRule) -> LifecycleRule {
    let mut builder = LifecycleRule::builder()
        .id(&rule.id)
        .filter(LifecycleRuleFilter::builder().prefix(&rule.prefix).build())
        .status(ExpirationStatus::Enabled)
        .expiration(LifecycleExpiration::builder().days(rule.days as i32).build())
        // In a versioned bucket, expiring or deleting an object leaves its
        // old version behind: let those go a day later, or nothing is freed.
        .noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(1).build());
    if let Some(days) = rule.abort_incomplete_after_days {
        builder = builder.abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(days as i32)
                .build(),
        );
    }
    builder.build().expect("status is set")
}

/// A key in `x-amz-copy-source`: URL-encoded, slashes kept.
fn copy_source_key(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn body_error(e: impl std::error::Error + Send + Sync + 'static) -> CloudError {
    CloudError {
        op: "GetObject",
        kind: CloudErrorKind::Transient,
        code: "BodyRead".into(),
        message: e.to_string(),
        source: Some(Box::new(e)),
    }
}
