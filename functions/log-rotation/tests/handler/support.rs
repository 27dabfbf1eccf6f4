//! A staging bucket of its own in the emulator for each test, and log parts to
//! put in it.

use std::io::{Read, Write};

use shared::cloud::aws::{AwsSettings, S3Adapter};
use shared::cloud::ObjectStore;
use shared::config::S3Location;
use shared::domain::logs::{LogHour, HOUR_MS};
use shared::time::now_ms;
use shared::workflows::rotation::{LogRotation, RotationReport, RotationSettings};

pub const REGION: &str = "us-west-2";

pub struct Bucket {
    pub account: String,
    pub objects: S3Adapter,
    pub staging: S3Location,
}

/// An S3 client of `account` in the emulator.
pub fn bucket_handle(account: &str) -> S3Adapter {
    client(account, 3)
}

fn client(account: &str, attempts: u32) -> S3Adapter {
    let settings = AwsSettings {
        endpoint: Some(emulator::shared().endpoint().to_owned()),
        credentials: Some((account.to_owned(), "test".into())),
        max_attempts: Some(attempts),
    };
    S3Adapter::new(settings, REGION)
}

/// A fresh account and bucket; `attempts` is the SDK's attempts per call.
pub async fn bucket(attempts: u32) -> Bucket {
    let account = emulator::fresh_account();
    let staging = S3Location::parse(&format!("s3://logs-{account}/dm")).unwrap();
    let objects = client(&account, attempts);
    objects.ensure_bucket(&staging.bucket).await.unwrap();
    Bucket {
        account,
        objects,
        staging,
    }
}

/// The hour `hours_ago` before this one, of one node's service.
pub fn hour(service: &str, hours_ago: i64) -> LogHour {
    LogHour::containing(7, "i-0123456789abcdef0", service, now_ms() - hours_ago * HOUR_MS)
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

impl Bucket {
    pub fn rotation(&self, settings: RotationSettings) -> LogRotation<'_, S3Adapter> {
        LogRotation::new(&self.objects, &self.staging, settings)
    }

    pub async fn rotate(&self) -> RotationReport {
        self.rotation(RotationSettings::default()).run().await.unwrap()
    }

    pub async fn put(&self, rel: &str, body: Vec<u8>) {
        self.objects
            .put(&self.staging.bucket, &self.staging.key(rel), body)
            .await
            .unwrap();
    }

    /// Puts part `n` of an hour: `lines` lines naming the hour and the part,
    /// plain or gzip. Returns its key (relative) and its lines.
    pub async fn part(&self, hour: &LogHour, n: i64, lines: usize, gzip_it: bool) -> (String, Vec<String>) {
        let text: Vec<String> = (0..lines)
            .map(|l| format!("{} part {n} line {l}", hour.label()))
            .collect();
        let body = format!("{}\n", text.join("\n")).into_bytes();
        let mut key = hour.part_key(hour.start_ms + n);
        let body = if gzip_it {
            key.push_str(".gz");
            gzip(&body)
        } else {
            body
        };
        self.put(&key, body).await;
        (key, text)
    }

    /// Every key under `rel` (relative to the staging prefix), sorted.
    pub async fn keys(&self, rel: &str) -> Vec<String> {
        let root = self.staging.key("");
        let mut keys: Vec<String> = self
            .objects
            .list(&self.staging.bucket, &self.staging.key(rel))
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.strip_prefix(&root).unwrap().to_owned())
            .collect();
        keys.sort();
        keys
    }

    pub async fn get(&self, rel: &str) -> Option<Vec<u8>> {
        self.objects
            .get(&self.staging.bucket, &self.staging.key(rel))
            .await
            .unwrap()
    }

    /// The lines of a gzip object.
    pub async fn lines_of(&self, rel: &str) -> Vec<String> {
        let body = self.get(rel).await.unwrap_or_else(|| panic!("{rel} is missing"));
        String::from_utf8(gunzip(&body))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Multipart uploads that were neither completed nor aborted.
    pub async fn pending_uploads(&self) -> usize {
        self.objects
            .pending_uploads(&self.staging.bucket, &self.staging.key(""))
            .await
            .unwrap()
            .len()
    }
}
