//! `POST /v1/environments`: the spec's fields are checked before anything is
//! written, and names are unique.

use serde_json::json;

use crate::support::*;

/// Names that are not 1 to 63 characters of `[a-z0-9-]` starting and ending with
/// a letter or digit, with what the message must say about each.
pub fn bad_names() -> Vec<(String, &'static str)> {
    vec![
        (String::new(), "must not be empty"),
        ("a".repeat(64), "at most 63"),
        ("Prod".into(), "'P'"),
        ("prod_2".into(), "'_'"),
        ("prod 2".into(), "' '"),
        ("pröd".into(), "'ö'"),
        ("-prod".into(), "start and end"),
        ("prod-".into(), "start and end"),
    ]
}

#[tokio::test]
async fn environment_names_that_are_empty_too_long_uppercase_underscored_or_dash_led_are_refused() {
    on_both_backends(|fx| async move {
        for (name, problem) in bad_names() {
            let req = Req::post("/v1/environments", &environment_body(&name));
            fx.refused(req, 400, "INVALID_FIELD", Some("name"), &["name", problem])
                .await;
        }
        // The longest valid name is accepted.
        let longest = "a".repeat(63);
        let reply = fx
            .send(Req::post("/v1/environments", &environment_body(&longest)))
            .await;
        reply.assert_status(202);
        assert_eq!(reply.str_at("/environment/name"), longest);
    })
    .await;
}

#[tokio::test]
async fn malformed_cidrs_are_refused_naming_vpc_cidr_or_admin_cidr() {
    on_both_backends(|fx| async move {
        for field in ["vpcCidr", "adminCidr"] {
            for raw in [
                "10.0.0.1/16",
                "300.0.0.0/8",
                "10.0.0.0/33",
                "10.0.0.0",
                "10.0.0/16",
                "fd00::/8",
                "",
            ] {
                let body = with(&environment_body("prod"), field, json!(raw));
                let mut mentions = vec![field];
                if !raw.is_empty() {
                    mentions.push(raw);
                }
                fx.refused(
                    Req::post("/v1/environments", &body),
                    400,
                    "INVALID_FIELD",
                    Some(field),
                    &mentions,
                )
                .await;
            }
        }
        // Host bits set: the message suggests the network address.
        let body = with(&environment_body("prod"), "vpcCidr", json!("10.0.0.1/16"));
        fx.refused(
            Req::post("/v1/environments", &body),
            400,
            "INVALID_FIELD",
            Some("vpcCidr"),
            &["10.0.0.0/16"],
        )
        .await;
        // Valid CIDRs are accepted and kept.
        let mut body = environment_body("prod");
        body["vpcCidr"] = json!("10.0.0.0/16");
        body["adminCidr"] = json!("203.0.113.0/24");
        body["createSecurityGroup"] = json!(true);
        let reply = fx.send(Req::post("/v1/environments", &body)).await;
        reply.assert_status(202);
        assert_eq!(reply.str_at("/environment/vpcCidr"), "10.0.0.0/16");
        assert_eq!(reply.str_at("/environment/adminCidr"), "203.0.113.0/24");
        assert_eq!(reply.at("/environment/createSecurityGroup"), &json!(true));
    })
    .await;
}

#[tokio::test]
async fn a_security_group_without_an_admin_cidr_is_refused_naming_admin_cidr() {
    on_both_backends(|fx| async move {
        let body = with(&environment_body("prod"), "createSecurityGroup", json!(true));
        fx.refused(
            Req::post("/v1/environments", &body),
            400,
            "INVALID_FIELD",
            Some("adminCidr"),
            &["adminCidr", "createSecurityGroup"],
        )
        .await;
        let body = with(&body, "adminCidr", json!(null));
        fx.refused(
            Req::post("/v1/environments", &body),
            400,
            "INVALID_FIELD",
            Some("adminCidr"),
            &["adminCidr"],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn other_environment_fields_that_are_not_valid_are_refused_naming_the_field() {
    on_both_backends(|fx| async move {
        let env = environment_body("prod");
        let mut with_vpc = env.clone();
        with_vpc["vpcId"] = json!("vpc-0abc");
        let cases = vec![
            (with(&env, "region", json!("us-west")), "region", "us-west"),
            (with(&env, "region", json!("US-WEST-2")), "region", "US-WEST-2"),
            (with(&env, "region", json!("")), "region", "region"),
            (with(&env, "vpcId", json!("vpc_0abc")), "vpcId", "vpc_0abc"),
            (with(&env, "vpcId", json!("sg-0abc")), "vpcId", "sg-0abc"),
            (with(&env, "subnetIds", json!(["subnet-1"])), "subnetIds", "vpcId"),
            (
                with(&with_vpc, "subnetIds", json!(["subnet-1", "sub-2"])),
                "subnetIds[1]",
                "sub-2",
            ),
        ];
        for (body, field, mention) in cases {
            fx.refused(
                Req::post("/v1/environments", &body),
                400,
                "INVALID_FIELD",
                Some(field),
                &[field, mention],
            )
            .await;
        }
        let mut body = with_vpc.clone();
        body["subnetIds"] = json!(["subnet-1", "subnet-2"]);
        let reply = fx.send(Req::post("/v1/environments", &body)).await;
        reply.assert_status(202);
        assert_eq!(
            reply.at("/environment/subnetIds"),
            &json!(["subnet-1", "subnet-2"])
        );
        assert_eq!(reply.str_at("/environment/vpcId"), "vpc-0abc");
    })
    .await;
}

#[tokio::test]
async fn a_duplicate_environment_name_is_refused_with_409_and_nothing_is_written() {
    on_both_backends(|fx| async move {
        fx.create_environment("prod").await;
        fx.refused(
            Req::post("/v1/environments", &environment_body("prod")),
            409,
            "CONFLICT",
            None,
            &["prod", "already exists"],
        )
        .await;
        // Unique across regions too.
        let other_region = with(&environment_body("prod"), "region", json!("eu-west-1"));
        fx.refused(
            Req::post("/v1/environments", &other_region),
            409,
            "CONFLICT",
            None,
            &["prod"],
        )
        .await;
        // Another name is fine.
        let (_, id) = fx.create_environment("prod-2").await;
        let names: Vec<String> = fx
            .store
            .list_environments()
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["prod", "prod-2"], "[{}]", fx.backend);
        assert_eq!(fx.store.get_environment(id).await.unwrap().name, "prod-2");
    })
    .await;
}
