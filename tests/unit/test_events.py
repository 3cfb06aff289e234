"""Bucket notification records as MinIO sends them."""

from __future__ import annotations

from workers.stores.events import ObjectEvent, parse_records


def record(event: str, key: str, **obj: object) -> dict:
    return {"eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "", "eventName": event,
            "userIdentity": {"principalId": "copycat"},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "Config", "bucket": {
                "name": "copycat-uploads", "ownerIdentity": {"principalId": "copycat"},
                "arn": "arn:aws:s3:::copycat-uploads"}, "object": {"key": key, **obj}}}


def test_created_put_with_url_encoded_unicode_key() -> None:
    """MinIO query-escapes keys: spaces become '+', Chinese file names percent-encoded UTF-8."""
    message = {"EventName": "s3:ObjectCreated:Put", "Key": "copycat-uploads/x", "Records": [
        record("s3:ObjectCreated:Put", "batch/%E8%A7%86%E9%A2%91+%E5%89%AF%E6%9C%AC+1.mp4", size=761445,
               eTag="74aae5ed4f535fdfe22ccd0a0455d478", contentType="video/mp4", sequencer="17A1B2C3D4E5F6")]}
    assert parse_records(message) == [
        ObjectEvent("created", "copycat-uploads", "batch/视频 副本 1.mp4", 761445, "74aae5ed4f535fdfe22ccd0a0455d478")
    ]


def test_multipart_upload_keeps_its_etag() -> None:
    [event] = parse_records({"Records": [record("s3:ObjectCreated:CompleteMultipartUpload", "big%2Bclip.mp4",
                                                size=104857600, eTag="\"9b2cf535f27731c974343645a3985328-7\"")]})
    assert event.key == "big+clip.mp4"
    assert event.etag == "9b2cf535f27731c974343645a3985328-7"


def test_removed_and_other_events() -> None:
    message = {"Records": [
        record("s3:ObjectRemoved:Delete", "old.mp4", sequencer="1"),
        record("s3:ObjectAccessed:Get", "old.mp4"),
        record("s3:ObjectCreated:Copy", "copy.mp4", size=3, eTag="abc"),
        {"eventName": "s3:ObjectCreated:Put"},  # malformed: no s3 section
    ]}
    assert parse_records(message) == [
        ObjectEvent("removed", "copycat-uploads", "old.mp4"),
        ObjectEvent("created", "copycat-uploads", "copy.mp4", 3, "abc"),
    ]


def test_empty_keepalive_messages() -> None:
    assert parse_records({}) == []
    assert parse_records({"Records": None}) == []
