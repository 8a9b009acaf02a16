//! The users of the admin API: a role and the SHA-256 of a bearer token each, by name, with an
//! index by token hash so authentication is one map lookup, not a scan.
//!
//! Pure, like the rest of the state machine. Two rules hold at apply time, so every node agrees:
//! the first administrator is added only while there is none ([`Users::add_first_administrator`]),
//! and the last administrator can be neither removed nor demoted.

use super::{Refusal, Role, User};
use std::collections::{BTreeMap, HashMap};

/// Users by name, and the same users by token hash.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_name: BTreeMap<String, User>,
    by_hash: HashMap<[u8; 32], String>,
}

impl Users {
    /// Rebuilds the users (and the hash index) from a snapshot's map.
    pub fn from_map(by_name: BTreeMap<String, User>) -> Self {
        let by_hash = by_name
            .iter()
            .map(|(n, u)| (u.token_sha256, n.clone()))
            .collect();
        Self { by_name, by_hash }
    }

    /// The users by name (what a snapshot holds).
    pub fn as_map(&self) -> &BTreeMap<String, User> {
        &self.by_name
    }

    /// The name and role of the user whose token hashes to `token_sha256`.
    pub fn by_token_hash(&self, token_sha256: &[u8; 32]) -> Option<(&str, Role)> {
        let name = self.by_hash.get(token_sha256)?;
        let user = self.by_name.get(name)?;
        Some((name.as_str(), user.role))
    }

    fn administrators(&self) -> usize {
        self.by_name
            .values()
            .filter(|u| u.role == Role::Administrator)
            .count()
    }

    /// Creates or replaces `name`. Refused when another user has the same token hash, or when it
    /// would demote the last administrator.
    pub fn put(&mut self, name: &str, user: &User) -> Result<(), Refusal> {
        if let Some(owner) = self.by_hash.get(&user.token_sha256)
            && owner != name
        {
            return Err(Refusal::InvalidField {
                field: "token".into(),
                reason: "another user has the same token".into(),
            });
        }
        if let Some(old) = self.by_name.get(name) {
            if old.role == Role::Administrator
                && user.role != Role::Administrator
                && self.administrators() == 1
            {
                return Err(Refusal::LastAdministrator { name: name.into() });
            }
            self.by_hash.remove(&old.token_sha256);
        }
        self.by_name.insert(name.to_owned(), user.clone());
        self.by_hash.insert(user.token_sha256, name.to_owned());
        Ok(())
    }

    /// Removes `name`. Refused for an unknown name and for the last administrator.
    pub fn remove(&mut self, name: &str) -> Result<(), Refusal> {
        let Some(user) = self.by_name.get(name) else {
            return Err(Refusal::NoSuchUser { name: name.into() });
        };
        if user.role == Role::Administrator && self.administrators() == 1 {
            return Err(Refusal::LastAdministrator { name: name.into() });
        }
        let hash = user.token_sha256;
        self.by_name.remove(name);
        self.by_hash.remove(&hash);
        Ok(())
    }

    /// Adds administrator `name` only while no administrator exists; returns whether it did.
    pub fn add_first_administrator(
        &mut self,
        name: &str,
        token_sha256: [u8; 32],
    ) -> Result<bool, Refusal> {
        if self.administrators() > 0 {
            return Ok(false);
        }
        self.put(
            name,
            &User {
                role: Role::Administrator,
                token_sha256,
            },
        )?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role, byte: u8) -> User {
        User {
            role,
            token_sha256: [byte; 32],
        }
    }

    #[test]
    fn a_token_is_found_by_its_hash_and_a_replaced_token_no_longer_is() {
        let mut u = Users::default();
        u.put("ann", &user(Role::SecurityAuditor, 1)).unwrap();
        assert_eq!(
            u.by_token_hash(&[1; 32]),
            Some(("ann", Role::SecurityAuditor))
        );
        u.put("ann", &user(Role::SecurityAuditor, 2)).unwrap();
        assert_eq!(u.by_token_hash(&[1; 32]), None);
        assert_eq!(
            u.by_token_hash(&[2; 32]),
            Some(("ann", Role::SecurityAuditor))
        );
        assert!(u.put("bob", &user(Role::SecurityAuditor, 2)).is_err());
        let rebuilt = Users::from_map(u.as_map().clone());
        assert_eq!(
            rebuilt.by_token_hash(&[2; 32]),
            Some(("ann", Role::SecurityAuditor))
        );
    }

    #[test]
    fn the_first_administrator_is_added_once_and_the_last_one_stays() {
        let mut u = Users::default();
        assert_eq!(u.add_first_administrator("admin", [7; 32]), Ok(true));
        assert_eq!(u.add_first_administrator("admin", [8; 32]), Ok(false));
        assert_eq!(
            u.by_token_hash(&[7; 32]),
            Some(("admin", Role::Administrator))
        );
        assert_eq!(
            u.remove("admin"),
            Err(Refusal::LastAdministrator {
                name: "admin".into()
            })
        );
        assert_eq!(
            u.put("admin", &user(Role::SecurityAuditor, 7)),
            Err(Refusal::LastAdministrator {
                name: "admin".into()
            })
        );
        assert_eq!(
            u.remove("nobody"),
            Err(Refusal::NoSuchUser {
                name: "nobody".into()
            })
        );
        u.put("root", &user(Role::Administrator, 9)).unwrap();
        u.remove("admin").unwrap();
        assert_eq!(u.by_token_hash(&[7; 32]), None);
    }
}
