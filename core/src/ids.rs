//! Connect ids and ARNs: recognising UUIDs, decoding percent-encoded ids and normalising ARNs
//! to bare ids.

use std::borrow::Cow;

use crate::record::TargetKind;

/// Whether `s` has the shape of a Connect id: a UUID `8-4-4-4-12` of hex digits.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The UUID that starts `s`, if any (a role session name is the Connect user id, sometimes
/// followed by more, such as `<uuid>@<email>` cut to 64 characters).
pub fn leading_uuid(s: &str) -> Option<&str> {
    let head = s.get(..36)?;
    is_uuid(head).then_some(head)
}

/// An id field as the audit reads it: percent-decoded when CloudTrail recorded it encoded.
///
/// Calls made through CloudFormation and some SDKs record URI path parameters as sent, e.g.
/// `"InstanceId": "arn%3Aaws%3Aconnect%3Aus-east-1%3A111122223333%3Ainstance%2F<uuid>"`. Such a
/// value is decoded only when every `%` starts a valid `%XX` escape, the result is UTF-8, and
/// it is an ARN (`arn:…`) or a UUID: anything else is kept exactly as recorded, so a name or a
/// value that merely holds a `%` is never rewritten. Only escapes of printable ASCII
/// (`%20`–`%7F`) are decoded, and a value holding `+` (which form encoding reads as a space)
/// is kept: ARNs and ids are ASCII without spaces, and so every engine decodes alike.
pub fn decode_id(value: &str) -> Cow<'_, str> {
    if !value.contains('%') || value.contains('+') {
        return Cow::Borrowed(value);
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| char::from(b).to_digit(16);
            let (Some(hi @ 2..=7), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) else {
                return Cow::Borrowed(value);
            };
            // Both digits are below 16, so the byte fits.
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(0));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    match String::from_utf8(out) {
        Ok(decoded) if decoded.starts_with("arn:") || is_uuid(&decoded) => Cow::Owned(decoded),
        _ => Cow::Borrowed(value),
    }
}

/// A Connect resource named by an ARN or a bare id, split into the parts the audit needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResource<'a> {
    /// The instance id found in the ARN, if it was an ARN of a Connect instance resource.
    pub instance_id: Option<&'a str>,
    /// What the ARN names.
    pub kind: TargetKind,
    /// The bare id (for unknown resource types: the whole ARN).
    pub id: &'a str,
}

/// Classifies a Connect ARN such as
/// `arn:aws:connect:us-west-2:111122223333:instance/<i>/agent/<u>`.
///
/// Agents are users, `agent-group` is a hierarchy group; other resource types are
/// [`TargetKind::Resource`] keeping the full ARN as id. A bare instance ARN is a resource
/// whose id is the instance id. Returns `None` when `arn` is not a Connect ARN.
pub fn parse_connect_arn(arn: &str) -> Option<ConnectResource<'_>> {
    let rest = arn.strip_prefix("arn:")?;
    // arn:partition:service:region:account:resource; Connect resources use '/' only.
    let mut parts = rest.splitn(5, ':');
    let _partition = parts.next()?;
    if parts.next()? != "connect" {
        return None;
    }
    let _region = parts.next()?;
    let _account = parts.next()?;
    let resource = parts.next()?;
    let path = resource.strip_prefix("instance/")?;
    let mut segs = path.split('/');
    let instance = segs.next().filter(|s| !s.is_empty())?;
    match (segs.next(), segs.next(), segs.next()) {
        (None, _, _) => Some(ConnectResource {
            instance_id: Some(instance),
            kind: TargetKind::Resource,
            id: instance,
        }),
        (Some(kind), Some(id), None) if !id.is_empty() => {
            let kind = match kind {
                "agent" => TargetKind::User,
                "agent-group" => TargetKind::HierarchyGroup,
                "security-profile" => TargetKind::SecurityProfile,
                "routing-profile" => TargetKind::RoutingProfile,
                _ => TargetKind::Resource,
            };
            let id = if kind == TargetKind::Resource {
                arn
            } else {
                id
            };
            Some(ConnectResource {
                instance_id: Some(instance),
                kind,
                id,
            })
        }
        _ => Some(ConnectResource {
            instance_id: Some(instance),
            kind: TargetKind::Resource,
            id: arn,
        }),
    }
}

/// An id as every record column holds it: percent-decoded ([`decode_id`]), then a Connect ARN
/// normalised to the bare id ([`bare_id`]).
pub fn normal_id(value: &str) -> String {
    bare_id(&decode_id(value)).to_owned()
}

/// Normalises an id that may be given as a Connect ARN to the bare id (`…/agent/<u>` → `<u>`,
/// `…:instance/<i>` → `<i>`); anything else is returned unchanged.
pub fn bare_id(value: &str) -> &str {
    match parse_connect_arn(value) {
        Some(r) if r.kind != TargetKind::Resource || r.id != value => r.id,
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "66666666-7777-8888-9999-000000000000";
    const I: &str = "11111111-2222-3333-4444-555555555555";

    #[test]
    fn uuid_shape() {
        assert!(is_uuid(U));
        assert!(!is_uuid("66666666-7777-8888-9999-00000000000"));
        assert!(!is_uuid("66666666x7777-8888-9999-000000000000"));
        assert!(!is_uuid("../../../../../../../../../etc/passw"));
        assert_eq!(leading_uuid(&format!("{U}@admin@example.com")), Some(U));
        assert_eq!(leading_uuid("admin@example.com"), None);
        assert_eq!(leading_uuid("short"), None);
    }

    #[test]
    fn percent_encoded_ids_decode_only_to_arns_and_ids() {
        let encoded = format!("arn%3Aaws%3Aconnect%3Aus-east-1%3A111122223333%3Ainstance%2F{I}");
        assert_eq!(
            decode_id(&encoded),
            format!("arn:aws:connect:us-east-1:111122223333:instance/{I}")
        );
        let lower = format!("arn%3aaws%3aconnect%3aus-east-1%3a1%3ainstance%2f{I}%2fagent%2f{U}");
        assert_eq!(bare_id(&decode_id(&lower)), U);
        assert_eq!(decode_id(&U.replace('-', "%2D")), U);
        assert!(matches!(decode_id(U), Cow::Borrowed(_)));
        // Not an ARN or id once decoded, a broken escape, or not UTF-8: kept as recorded.
        for kept in [
            "100%25 sure",
            "Tier%201",
            "arn%3",
            "arn%3Gx",
            "%FF%FEarn:x",
            "arn%3Ax%C3%A9",
            "arn%3Aa+b",
            "50%",
        ] {
            assert_eq!(decode_id(kept), kept, "{kept}");
        }
    }

    #[test]
    fn arns_normalise_to_bare_ids() {
        let agent = format!("arn:aws:connect:us-west-2:111122223333:instance/{I}/agent/{U}");
        assert_eq!(bare_id(&agent), U);
        let instance = format!("arn:aws:connect:us-west-2:111122223333:instance/{I}");
        assert_eq!(bare_id(&instance), I);
        assert_eq!(bare_id(U), U);
        let r = parse_connect_arn(&agent).unwrap();
        assert_eq!((r.instance_id, r.kind), (Some(I), TargetKind::User));
        let group = format!("arn:aws-cn:connect:cn-north-1:1:instance/{I}/agent-group/{U}");
        assert_eq!(
            parse_connect_arn(&group).unwrap().kind,
            TargetKind::HierarchyGroup
        );
        let queue = format!("arn:aws:connect:us-west-2:1:instance/{I}/queue/{U}");
        let q = parse_connect_arn(&queue).unwrap();
        assert_eq!((q.kind, q.id), (TargetKind::Resource, queue.as_str()));
        assert_eq!(bare_id(&queue), queue);
        assert!(parse_connect_arn("arn:aws:iam::1:user/x").is_none());
    }
}
