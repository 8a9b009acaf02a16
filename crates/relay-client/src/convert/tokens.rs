//! Roles and the token messages (`TokenInfo`, `CreateTokenReply`, `WhoAmIReply`).

use relay_proto::admin::v1 as pb;

use super::BadField;
use crate::admin_types::{Identity, NewToken, Role, TokenInfo};

/// A role as the protobuf enum value.
pub(crate) fn role_to_pb(r: Role) -> i32 {
    match r {
        Role::Administrator => pb::Role::Administrator.into(),
        Role::SecurityAuditor => pb::Role::SecurityAuditor.into(),
    }
}

fn role(value: i32) -> Result<Role, BadField> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Administrator) => Ok(Role::Administrator),
        Ok(pb::Role::SecurityAuditor) => Ok(Role::SecurityAuditor),
        _ => Err(BadField {
            field: "role",
            reason: format!("unknown role {value}"),
        }),
    }
}

/// A token's owner and role.
pub(crate) fn token_info(t: pb::TokenInfo) -> Result<TokenInfo, BadField> {
    Ok(TokenInfo {
        role: role(t.role)?,
        name: t.name,
    })
}

/// A created token; refused without its info or with an empty token.
pub(crate) fn new_token(r: pb::CreateTokenReply) -> Result<NewToken, BadField> {
    let info = token_info(r.info.ok_or_else(|| BadField::missing("info"))?)?;
    if r.token.is_empty() {
        return Err(BadField::missing("token"));
    }
    Ok(NewToken {
        info,
        token: r.token,
    })
}

/// The caller's identity.
pub(crate) fn identity(r: pb::WhoAmIReply) -> Result<Identity, BadField> {
    Ok(Identity {
        info: token_info(r.info.ok_or_else(|| BadField::missing("info"))?)?,
        node_id: r.node_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_convert_both_ways_and_unknown_ones_are_refused() {
        for r in [Role::Administrator, Role::SecurityAuditor] {
            assert_eq!(role(role_to_pb(r)), Ok(r));
        }
        assert_eq!(role(0).unwrap_err().field, "role");
        assert_eq!(role(9).unwrap_err().field, "role");
    }

    #[test]
    fn a_created_token_needs_its_info_and_the_token() {
        let info = pb::TokenInfo {
            name: "ops".into(),
            role: pb::Role::SecurityAuditor.into(),
        };
        let ok = new_token(pb::CreateTokenReply {
            info: Some(info.clone()),
            token: "t0k3n".into(),
        });
        let ok = ok.expect("valid");
        assert_eq!(ok.info.role, Role::SecurityAuditor);
        assert!(!format!("{ok:?}").contains("t0k3n"));
        let no_token = pb::CreateTokenReply {
            info: Some(info),
            token: String::new(),
        };
        assert_eq!(new_token(no_token).unwrap_err().field, "token");
        let no_info = pb::CreateTokenReply::default();
        assert_eq!(new_token(no_info).unwrap_err().field, "info");
    }
}
