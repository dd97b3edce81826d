use super::*;

/// RFC 8291's example subscription's `p256dh` key.
const P256DH: &str =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";

/// A subscription with `p256dh` and `auth` whose endpoint's path is a secret.
fn subscription(p256dh: &str, auth: &str) -> Result<Subscription, Refused> {
    Subscription::new(
        1,
        "https://push.example.net/p/secret-path",
        p256dh,
        auth,
        &Guard::open(),
    )
}

/// RFC 8291 §5 and Appendix A: the example message, every input fixed.
#[test]
fn the_rfc_8291_example_encrypts_byte_for_byte() {
    let open = Guard::open();
    let to = Subscription::new(
        1,
        "https://push.example.net/push/JzLQ3raZJfFBR0aqvOMsLrt54w4rJUsV",
        P256DH,
        "BTBZMqHH6r4Tts7J_aSIgg",
        &open,
    )
    .unwrap();
    let sender =
        SecretKey::from_slice(&decode("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw").unwrap()).unwrap();
    let salt: [u8; 16] = decode("DGv6ra1nlYgDCS1FRnbzlw").unwrap().try_into().unwrap();
    let body = encrypt(&to, b"When I grow up, I want to be a watermelon", &sender, &salt).unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.encode(body),
        "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYW\
         AmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSg\
         Sxsj_Qulcy4a-fN"
    );
}

#[test]
fn keys_are_checked_and_never_shown() {
    let (private, public) = Vapid::generate();
    let vapid = Vapid::new(&private, "mailto:ops@example.com").unwrap();
    assert_eq!(vapid.public_key(), public);
    assert!(!format!("{vapid:?}").contains(&private));
    for (key, subject, needle) in [
        ("not-a-key", "mailto:ops@example.com", "VAPID_PRIVATE_KEY"),
        (private.as_str(), "ops@example.com", "VAPID_SUBJECT"),
    ] {
        let err = Vapid::new(key, subject).unwrap_err();
        assert!(err.contains(needle) && !err.contains(&private), "{err}");
    }
    for (key, auth, needle) in [
        ("BCVx", "BTBZMqHH6r4Tts7J_aSIgg", "p256dh"),
        (P256DH, "BTBZ", "auth"),
    ] {
        let err = subscription(key, auth).unwrap_err().0;
        assert!(err.contains(needle), "{err}");
    }
    let sub = subscription(P256DH, "BTBZMqHH6r4Tts7J_aSIgg=").unwrap();
    let debug = format!("{sub:?}");
    assert!(
        !debug.contains("secret-path") && !debug.contains("BTBZ"),
        "{debug}"
    );
    // The token names the push service's origin, not the subscription's path.
    let auth = vapid.authorization(&sub.url, 1_796_028_300);
    assert!(
        auth.starts_with("vapid t=") && auth.ends_with(&format!(", k={public}")),
        "{auth}"
    );
    let claims = auth["vapid t=".len()..].split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&decode(claims).unwrap()).unwrap();
    assert_eq!(claims["aud"], "https://push.example.net");
    assert_eq!(claims["exp"], 1_796_028_300 + TOKEN_LIFETIME);
    assert_eq!(claims["sub"], "mailto:ops@example.com");
}
