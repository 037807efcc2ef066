//! Server access control lists (`m.room.server_acl`), as the client-server specification's
//! "Server Access Control Lists" module defines them.

use crate::json::Value;

/// Whether `pattern` matches `text`: `*` is any run of characters, `?` exactly one; the whole
/// string must match, without regard to ASCII case.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    let t: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
    // Greedy matching with a single backtrack point: O(len(p) * len(t)) at worst.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// The host part of a server name: the port, if any, removed.
pub fn host_of(server: &str) -> &str {
    if server.starts_with('[') {
        match server.find(']') {
            Some(end) => &server[..=end],
            None => server,
        }
    } else {
        match server.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => server,
        }
    }
}

fn is_ip_literal(host: &str) -> bool {
    if host.starts_with('[') && host.ends_with(']') {
        return true;
    }
    host.parse::<std::net::Ipv4Addr>().is_ok()
}

/// Whether the ACL content lets `server` take part in the room.
///
/// The port is ignored. An IP literal is denied when `allow_ip_literals` is `false`. A
/// server matching any `deny` glob is denied; otherwise it must match an `allow` glob (an
/// absent or empty `allow` denies everyone). Entries that are not strings are ignored.
pub fn server_allowed(acl_content: &Value, server: &str) -> bool {
    let host = host_of(server);
    let allow_ip = !matches!(
        acl_content.get("allow_ip_literals"),
        Some(Value::Bool(false))
    );
    if !allow_ip && is_ip_literal(host) {
        return false;
    }
    let globs = |key: &str| -> Vec<&str> {
        acl_content
            .get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    if globs("deny").iter().any(|g| glob_matches(g, host)) {
        return false;
    }
    globs("allow").iter().any(|g| glob_matches(g, host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Value;

    fn acl(text: &str) -> Value {
        Value::parse_strict(text).unwrap()
    }

    #[test]
    fn spec_rules() {
        // Examples follow the rules of the spec's server ACL module.
        let a =
            acl(r#"{"allow":["*"],"deny":["*.evil.com","evil.com"],"allow_ip_literals":false}"#);
        assert!(server_allowed(&a, "good.example"));
        assert!(!server_allowed(&a, "evil.com"));
        assert!(!server_allowed(&a, "sub.EVIL.com:8448"));
        assert!(!server_allowed(&a, "1.2.3.4"));
        assert!(!server_allowed(&a, "[::1]:8448"));
        assert!(!server_allowed(&acl(r#"{"allow":[]}"#), "good.example"));
        assert!(!server_allowed(&acl(r#"{}"#), "good.example"));
        assert!(server_allowed(&acl(r#"{"allow":["*"]}"#), "1.2.3.4:80"));
        assert!(server_allowed(
            &acl(r#"{"allow":["goo?.example"]}"#),
            "GOOD.example"
        ));
        assert!(!server_allowed(
            &acl(r#"{"allow":["good"]}"#),
            "good.example"
        ));
        assert!(!server_allowed(
            &acl(r#"{"allow":["example"]}"#),
            "notexample"
        ));
    }

    #[test]
    fn glob_is_not_exponential() {
        let pattern = "*a".repeat(50);
        let text = "a".repeat(5000) + "b";
        assert!(!glob_matches(&pattern, &text));
    }
}
