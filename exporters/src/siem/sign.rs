//! Standard Webhooks signing (<https://www.standardwebhooks.com>, "Symmetric signatures"):
//! `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, where the
//! secret is `whsec_<base64 key>`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The decoded key of a `whsec_…` secret. Its `Debug` does not show it.
#[derive(Clone)]
pub(crate) struct WebhookKey(Vec<u8>);

impl std::fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookKey(***)")
    }
}

impl WebhookKey {
    /// Decodes `whsec_<base64>` (the prefix is optional, as in the reference libraries). The
    /// error never quotes the secret.
    pub(crate) fn from_secret(secret: &str) -> Result<Self, &'static str> {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        match STANDARD.decode(encoded) {
            Ok(key) if !key.is_empty() => Ok(Self(key)),
            Ok(_) => Err("the webhook secret has an empty key"),
            Err(_) => Err("the webhook secret is not whsec_ followed by standard base64"),
        }
    }

    /// The `webhook-signature` value of one attempt: `v1,<base64 signature>`.
    pub(crate) fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes keys of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-id` of a batch: `msg_` and the hex SHA-256 of its event ids, one per line.
/// It depends on the batch's content only, so it is the same on every retry and a receiver can
/// deduplicate on it.
pub(crate) fn webhook_id<S: AsRef<str>>(event_ids: &[S]) -> String {
    let mut hash = Sha256::new();
    for id in event_ids {
        hash.update(id.as_ref().as_bytes());
        hash.update(b"\n");
    }
    let mut id = String::with_capacity(4 + 64);
    id.push_str("msg_");
    for byte in hash.finalize() {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    id
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    /// HMAC-SHA256 by the RFC 2104 definition, on `sha2` alone: an independent check of the
    /// `hmac` crate as used above.
    fn rfc2104_hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
        const BLOCK: usize = 64;
        let mut block = [0u8; BLOCK];
        if key.len() > BLOCK {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let pad = |byte: u8| block.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(message)
            .finalize();
        Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize()
            .to_vec()
    }

    /// The vector of the Standard Webhooks reference libraries ("sign function works" in
    /// libraries/javascript/src/webhook.test.ts of github.com/standard-webhooks/standard-webhooks).
    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let msg_id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let timestamp = 1_614_265_330;
        let payload = br#"{"test": 2432232314}"#;
        let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

        let key = WebhookKey::from_secret(secret).unwrap();
        assert_eq!(key.sign(msg_id, timestamp, payload), expected);

        let to_sign = [
            msg_id.as_bytes(),
            b".",
            timestamp.to_string().as_bytes(),
            b".",
            payload,
        ]
        .concat();
        let raw_key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let independent = format!(
            "v1,{}",
            STANDARD.encode(rfc2104_hmac_sha256(&raw_key, &to_sign))
        );
        assert_eq!(independent, expected);
        // The prefix is optional, as in the reference libraries.
        let bare = WebhookKey::from_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(bare.sign(msg_id, timestamp, payload), expected);
    }

    #[test]
    fn bad_secrets_are_refused_without_quoting_them() {
        for secret in ["whsec_", "whsec_%%%secret%%%"] {
            let err = WebhookKey::from_secret(secret).unwrap_err();
            assert!(!err.contains("secret%"), "{err}");
        }
        assert_eq!(
            format!("{:?}", WebhookKey::from_secret("whsec_AAAA").unwrap()),
            "WebhookKey(***)"
        );
    }

    #[test]
    fn webhook_id_depends_on_the_batch_only() {
        let a = webhook_id(&["e1", "e2"]);
        assert_eq!(a, webhook_id(&["e1".to_owned(), "e2".to_owned()]));
        assert_ne!(a, webhook_id(&["e2", "e1"]));
        assert_ne!(a, webhook_id(&["e1e2"]));
        assert!(a.starts_with("msg_") && a.len() == 68, "{a}");
    }
}
