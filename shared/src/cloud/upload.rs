//! Writing an object of unknown size to S3 at bounded memory: bytes collect in a
//! buffer of one part, and each full part goes up as part of a multipart upload.
//! An object smaller than one part is a single PUT. [`GzUpload`] compresses on the
//! way.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::{CloudResult, ObjectStore};

/// Bytes per uploaded part: above S3's 5 MiB minimum, and small enough that a
/// Lambda holds a few at once.
pub const PART_SIZE: usize = 8 << 20;

/// An object being written. Call [`Upload::finish`] to make it appear, or
/// [`Upload::abort`] after an error to throw its parts away.
pub struct Upload<'a, O: ObjectStore> {
    objects: &'a O,
    bucket: String,
    key: String,
    part_size: usize,
    buf: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<(i32, String)>,
    written: u64,
}

impl<'a, O: ObjectStore> Upload<'a, O> {
    pub fn new(objects: &'a O, bucket: &str, key: &str) -> Self {
        Upload {
            objects,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            part_size: PART_SIZE,
            buf: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
            written: 0,
        }
    }

    /// Parts of `bytes` (S3 wants at least 5 MiB for all but the last).
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes;
        self
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Parts uploaded so far.
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    pub async fn write(&mut self, data: &[u8]) -> CloudResult<()> {
        self.buf.extend_from_slice(data);
        self.written += data.len() as u64;
        while self.buf.len() >= self.part_size {
            let rest = self.buf.split_off(self.part_size);
            let part = std::mem::replace(&mut self.buf, rest);
            self.send(part).await?;
        }
        Ok(())
    }

    async fn send(&mut self, part: Vec<u8>) -> CloudResult<()> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = self.objects.create_multipart(&self.bucket, &self.key).await?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = self.parts.len() as i32 + 1;
        let etag = self
            .objects
            .upload_part(&self.bucket, &self.key, &upload_id, number, part)
            .await?;
        self.parts.push((number, etag));
        Ok(())
    }

    /// Makes the object appear; returns its size. On failure the upload's parts
    /// are thrown away.
    pub async fn finish(mut self) -> CloudResult<u64> {
        let result = self.complete().await;
        if result.is_err() {
            self.abort().await;
        }
        result
    }

    async fn complete(&mut self) -> CloudResult<u64> {
        let last = std::mem::take(&mut self.buf);
        let Some(upload_id) = self.upload_id.clone() else {
            self.objects.put(&self.bucket, &self.key, last).await?;
            return Ok(self.written);
        };
        if !last.is_empty() {
            self.send(last).await?;
        }
        self.objects
            .complete_multipart(&self.bucket, &self.key, &upload_id, &self.parts)
            .await?;
        self.upload_id = None;
        Ok(self.written)
    }

    /// Throws away what was uploaded, as well as it can: a part that cannot be
    /// aborted now is left to the bucket's rule for incomplete uploads, and to the
    /// next run's sweep of pending uploads.
    pub async fn abort(&mut self) {
        if let Some(id) = self.upload_id.take() {
            if let Err(e) = self.objects.abort_multipart(&self.bucket, &self.key, &id).await {
                tracing::warn!(key = %self.key, error = %e, "could not abort a multipart upload");
            }
        }
    }
}

/// An [`Upload`] of gzip: callers write plain bytes.
pub struct GzUpload<'a, O: ObjectStore> {
    encoder: GzEncoder<Vec<u8>>,
    upload: Upload<'a, O>,
    plain: u64,
}

/// Compressed bytes held before they go to the upload's buffer.
const FLUSH_AT: usize = 256 << 10;

impl<'a, O: ObjectStore> GzUpload<'a, O> {
    pub fn new(upload: Upload<'a, O>) -> Self {
        GzUpload {
            encoder: GzEncoder::new(Vec::new(), Compression::default()),
            upload,
            plain: 0,
        }
    }

    /// Plain bytes written so far.
    pub fn plain_bytes(&self) -> u64 {
        self.plain
    }

    pub fn upload(&self) -> &Upload<'a, O> {
        &self.upload
    }

    pub async fn write(&mut self, data: &[u8]) -> CloudResult<()> {
        self.encoder
            .write_all(data)
            .expect("writing to a Vec cannot fail");
        self.plain += data.len() as u64;
        if self.encoder.get_ref().len() >= FLUSH_AT {
            let compressed = std::mem::take(self.encoder.get_mut());
            self.upload.write(&compressed).await?;
        }
        Ok(())
    }

    /// Ends the gzip stream and the object; returns the object's (compressed) size.
    pub async fn finish(mut self) -> CloudResult<u64> {
        let tail = self.encoder.finish().expect("writing to a Vec cannot fail");
        if let Err(e) = self.upload.write(&tail).await {
            self.upload.abort().await;
            return Err(e);
        }
        self.upload.finish().await
    }

    pub async fn abort(&mut self) {
        self.upload.abort().await;
    }
}
