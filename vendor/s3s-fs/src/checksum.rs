use crate::fs::InternalInfo;

use stdx::default::default;

pub fn save_e_tag(info: &mut serde_json::Map<String, serde_json::Value>, e_tag: &str) {
    info.insert("e_tag".to_owned(), serde_json::Value::String(e_tag.to_owned()));
}

pub fn load_e_tag(info: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    info.get("e_tag").and_then(|v| v.as_str()).map(str::to_owned)
}

pub fn modify_internal_info(info: &mut serde_json::Map<String, serde_json::Value>, checksum: &s3s::dto::Checksum) {
    if let Some(checksum_crc32) = &checksum.checksum_crc32 {
        info.insert("checksum_crc32".to_owned(), serde_json::Value::String(checksum_crc32.clone()));
    }
    if let Some(checksum_crc32c) = &checksum.checksum_crc32c {
        info.insert("checksum_crc32c".to_owned(), serde_json::Value::String(checksum_crc32c.clone()));
    }
    if let Some(checksum_sha1) = &checksum.checksum_sha1 {
        info.insert("checksum_sha1".to_owned(), serde_json::Value::String(checksum_sha1.clone()));
    }
    if let Some(checksum_sha256) = &checksum.checksum_sha256 {
        info.insert("checksum_sha256".to_owned(), serde_json::Value::String(checksum_sha256.clone()));
    }

    if let Some(checksum_crc64nvme) = &checksum.checksum_crc64nvme {
        info.insert("checksum_crc64nvme".to_owned(), serde_json::Value::String(checksum_crc64nvme.clone()));
    }
}

pub fn from_internal_info(info: &InternalInfo) -> s3s::dto::Checksum {
    // A value other than a string (a damaged file) is no checksum, not a panic.
    let get = |name: &str| info.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let mut ans: s3s::dto::Checksum = default();
    ans.checksum_crc32 = get("checksum_crc32");
    ans.checksum_crc32c = get("checksum_crc32c");
    ans.checksum_sha1 = get("checksum_sha1");
    ans.checksum_sha256 = get("checksum_sha256");
    ans.checksum_crc64nvme = get("checksum_crc64nvme");
    ans
}
