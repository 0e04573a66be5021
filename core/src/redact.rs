//! What is removed from `request_parameters` and `response_elements` before any output sees
//! them: the values the Connect API model marks as secret credentials, and the keys a team
//! adds (`report.redact_keys`).
//!
//! A key is removed with its value, at any depth, whatever its letter case: `Password` and
//! `password` alike, inside `IdentityInfo` or a list. Identity values (e-mail, names, phone
//! numbers) are kept: an auditor needs to see what an identity change set. The list is the
//! members of the model (`tests/fixtures/models/`) whose shape is `sensitive` and holds a
//! credential; the `e2e` catalogue test checks it against the model.
//!
//! ```
//! use connect_audit_core::redact::Redaction;
//! let mut v = serde_json::json!({"Username": "jdoe", "Password": "p", "IdentityInfo": {"Email": "j@example.com"}});
//! Redaction::secrets().apply(&mut v);
//! assert_eq!(v, serde_json::json!({"Username": "jdoe", "IdentityInfo": {"Email": "j@example.com"}}));
//! Redaction::with_keys(["email"]).apply(&mut v);
//! assert_eq!(v, serde_json::json!({"Username": "jdoe", "IdentityInfo": {}}));
//! ```

use serde_json::Value;

/// The secret credentials of the Connect API model, by member name: always removed.
///
/// - `Password`: `CreateUser`'s initial password.
/// - `AuthCode`: the code a `CreateAuthCode` response returns.
/// - `Credentials`: the tokens a `GetFederationToken` response returns (the model marks the
///   whole structure secret, expiry times included), and `AccessToken`, `RefreshToken` inside
///   it, wherever else they may appear.
/// - `SignInUrl`: the sign-in URL of the same response. The model does not mark it, but it is
///   the way in for the user it names (`UserId` and `UserArn` stay).
pub const SECRET_KEYS: &[&str] = &[
    "Password",
    "AuthCode",
    "Credentials",
    "AccessToken",
    "RefreshToken",
    "SignInUrl",
];

/// The keys to remove: [`SECRET_KEYS`] and any added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction {
    /// Every key removed, in ASCII lower case.
    keys: Vec<String>,
}

impl Redaction {
    /// Only [`SECRET_KEYS`].
    pub fn secrets() -> Self {
        Self::with_keys(std::iter::empty::<&str>())
    }

    /// [`SECRET_KEYS`] and `extra` (any letter case).
    pub fn with_keys<S: AsRef<str>>(extra: impl IntoIterator<Item = S>) -> Self {
        let mut keys: Vec<String> = SECRET_KEYS
            .iter()
            .map(|k| k.to_ascii_lowercase())
            .chain(extra.into_iter().map(|k| k.as_ref().to_ascii_lowercase()))
            .collect();
        keys.sort();
        keys.dedup();
        Self { keys }
    }

    /// Whether `key` is removed.
    pub fn removes(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k.eq_ignore_ascii_case(key))
    }

    /// The keys removed, lower case, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(String::as_str)
    }

    /// Removes every such key from `value`, at any depth.
    pub fn apply(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.retain(|k, _| !self.removes(k));
                map.values_mut().for_each(|v| self.apply(v));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.apply(v)),
            _ => {}
        }
    }

    /// A column's JSON text from the text a trail store keeps (an Athena CloudTrail table,
    /// say): compact, the keys removed, exactly as the local engine writes it. `None` for
    /// `null`; an error for text that is not JSON.
    pub fn column_text(&self, json: &str) -> Result<Option<String>, serde_json::Error> {
        let mut v: Value = serde_json::from_str(json)?;
        self.apply(&mut v);
        Ok((!v.is_null()).then(|| v.to_string()))
    }
}

impl Default for Redaction {
    fn default() -> Self {
        Self::secrets()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_go_at_any_depth_and_case_identity_stays() {
        let mut v = json!({
            "Username": "jdoe", "password": "p1",
            "IdentityInfo": {"FirstName": "J", "Email": "j@example.com", "Mobile": "+81"},
            "Credentials": {"AccessToken": "t", "RefreshToken": "r", "AccessTokenExpiration": 1},
            "Session": {"ACCESSTOKEN": "t2", "Expires": 2},
            "AuthCode": "code", "SessionId": "s-1",
            "Items": [{"Password": "p2", "SignInUrl": "https://x/?token=1"}, "Password"]
        });
        Redaction::default().apply(&mut v);
        assert_eq!(
            v,
            json!({
                "Username": "jdoe",
                "IdentityInfo": {"FirstName": "J", "Email": "j@example.com", "Mobile": "+81"},
                "Session": {"Expires": 2},
                "SessionId": "s-1",
                "Items": [{}, "Password"]
            })
        );
    }

    #[test]
    fn added_keys_and_column_text() {
        let r = Redaction::with_keys(["Email", "EMAIL", "SecondaryEmail"]);
        assert!(r.removes("email") && r.removes("Password") && !r.removes("Mobile"));
        assert_eq!(
            r.column_text(r#"{"IdentityInfo":{"Email":"a","SecondaryEmail":"b","LastName":"L"},"Password":"x"}"#)
                .unwrap()
                .as_deref(),
            Some(r#"{"IdentityInfo":{"LastName":"L"}}"#)
        );
        assert_eq!(r.column_text("null").unwrap(), None);
        assert!(r.column_text("{oops").is_err());
    }
}
