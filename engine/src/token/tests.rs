use super::*;

const NOW: u64 = 1_800_000_000;

fn claims() -> Claims {
    Claims {
        sub: Some("u1".into()),
        read: vec!["chat-*".into(), "private-orders".into()],
        write: vec!["private-chat-*".into()],
        exp: Some(NOW + 60),
        jti: Some("t1".into()),
        ..Claims::default()
    }
}

#[test]
fn a_minted_token_verifies_with_its_grants() {
    let t = mint("app-key", "secret", &claims());
    assert!(looks_like_token(&t));
    let v = verify("app-key", "secret", &t, NOW).unwrap();
    assert_eq!(v.claims, claims());
    assert!(v.may_read("chat-1") && v.may_read("chat-a/b") && v.may_read("private-orders"));
    assert!(!v.may_read("private-orders-2") && !v.may_read("other"));
    assert!(v.may_write("private-chat-9") && !v.may_write("chat-1"));
    assert!(!v.expired(NOW + 60 + LEEWAY_SECS) && v.expired(NOW + 61 + LEEWAY_SECS));
}

#[test]
fn refusals_are_typed() {
    let t = mint("app-key", "secret", &claims());
    assert_eq!(
        verify("app-key", "other", &t, NOW).unwrap_err(),
        TokenError::BadSignature
    );
    assert_eq!(
        verify("other-key", "secret", &t, NOW).unwrap_err(),
        TokenError::WrongApp
    );
    assert_eq!(
        verify("app-key", "secret", &t, NOW + 100).unwrap_err(),
        TokenError::Expired
    );
    let mut c = claims();
    c.nbf = Some(NOW + 100);
    let t = mint("app-key", "secret", &c);
    assert_eq!(
        verify("app-key", "secret", &t, NOW).unwrap_err(),
        TokenError::NotYetValid
    );
    let mut c = claims();
    c.read = (0..101).map(|i| format!("c{i}")).collect();
    let t = mint("app-key", "secret", &c);
    assert_eq!(
        verify("app-key", "secret", &t, NOW).unwrap_err(),
        TokenError::TooManyGrants
    );
    let mut c = claims();
    c.read = vec!["[".into()];
    let t = mint("app-key", "secret", &c);
    assert!(matches!(
        verify("app-key", "secret", &t, NOW),
        Err(TokenError::BadGrant(_))
    ));
    let mut c = claims();
    c.jti = None;
    c.uses = Some(1);
    let t = mint("app-key", "secret", &c);
    assert_eq!(
        verify("app-key", "secret", &t, NOW).unwrap_err(),
        TokenError::BadUses
    );
    let mut c = claims();
    c.uses = Some(MAX_USES + 1);
    let t = mint("app-key", "secret", &c);
    assert_eq!(
        verify("app-key", "secret", &t, NOW).unwrap_err(),
        TokenError::BadUses
    );
    let mut c = claims();
    c.exp = Some(u64::MAX);
    assert!(verify("app-key", "secret", &mint("app-key", "secret", &c), NOW).is_ok());
    let big = format!("{}.{}.{}", "eyJ", "a".repeat(MAX_TOKEN_BYTES), "b");
    assert_eq!(
        verify("app-key", "secret", &big, NOW).unwrap_err(),
        TokenError::TooLarge
    );
}

#[test]
fn alg_none_truncated_and_garbage_are_malformed() {
    let t = mint("app-key", "secret", &claims());
    let parts: Vec<&str> = t.split('.').collect();
    // {"alg":"none","typ":"JWT"}
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
    assert!(matches!(
        verify("app-key", "secret", &none, NOW),
        Err(TokenError::Malformed(_))
    ));
    // {"alg":"HS512","typ":"JWT"}, correctly shaped but another algorithm.
    let hs512 = format!(
        "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.{}.{}",
        parts[1], parts[2]
    );
    assert!(verify("app-key", "secret", &hs512, NOW).is_err());
    for bad in [
        &t[..t.len() - 5],
        &t[..20],
        "eyJ..",
        "a.b.c",
        "",
        "eyJhbGciOiJIUzI1NiJ9.e30",
    ] {
        assert!(verify("app-key", "secret", bad, NOW).is_err(), "{bad}");
    }
    // No claims at all is a token that grants nothing.
    let empty = mint("app-key", "secret", &Claims::default());
    let v = verify("app-key", "secret", &empty, NOW).unwrap();
    assert!(!v.may_read("x") && !v.may_write("x") && !v.expired(u64::MAX));
}

proptest::proptest! {
    #[test]
    fn never_panics(s in ".{0,300}") {
        let _ = verify("k", "s", &s, NOW);
        let _ = looks_like_token(&s);
    }
}
