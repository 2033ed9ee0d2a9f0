//! Supervised access (调阅监督) as station records: every access to evidence, every request
//! to view or copy it, and every decision on a request is a leaf of the station's log, so
//! a published checkpoint commits to who saw or copied what. Leaves hold ids (a person's
//! number in the station, a role, record hashes, a case number), never names.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::hash::RecordHash;

/// A role a person acts under (a person may hold several; each action checks one).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// 民警: sees own clips, requests views and copies.
    Officer,
    /// 内勤: binds clips, attaches documents, prepares discs and export packages.
    Clerk,
    /// 部门负责人: approves requests for the department's footage, views it.
    DepartmentHead,
    /// 法制/督察/纪委: requests from any department, reads the access log.
    Oversight,
    /// 单位负责人: approves giving footage outside the agency, and sensitive footage.
    AgencyHead,
    /// IT 管理员: runs the station; no footage, no approvals.
    It,
}

impl Role {
    /// Every role, in the order people read them.
    pub const ALL: [Self; 6] = [
        Self::Officer,
        Self::Clerk,
        Self::DepartmentHead,
        Self::Oversight,
        Self::AgencyHead,
        Self::It,
    ];

    /// The id as the CLI, the ledger and the log spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Officer => "officer",
            Self::Clerk => "clerk",
            Self::DepartmentHead => "department-head",
            Self::Oversight => "oversight",
            Self::AgencyHead => "agency-head",
            Self::It => "it",
        }
    }

    /// The role's name for people.
    pub fn name_zh(self) -> &'static str {
        match self {
            Self::Officer => "民警",
            Self::Clerk => "内勤",
            Self::DepartmentHead => "部门负责人",
            Self::Oversight => "法制/督察/纪委",
            Self::AgencyHead => "单位负责人",
            Self::It => "IT 管理员",
        }
    }

    /// The role from its id.
    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == id)
    }
}

/// What a person did (or tried) that the access log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessAction {
    /// Logged in.
    Login,
    /// A login refused (wrong password, locked or disabled account, unknown login).
    LoginFailed,
    /// Viewed a case file (案卷).
    CaseView,
    /// Wrote an integrity report.
    Report,
    /// Searched the clips.
    Search,
    /// Played a clip.
    Playback,
    /// Built archive disc images of a case.
    DiscBuild,
    /// Burned an archive disc.
    DiscBurn,
    /// Wrote an export package under an approval.
    Export,
    /// Downloaded an export's image from the web page (its requester, before expiry).
    Download,
    /// Read the access log.
    AccessLog,
}

impl AccessAction {
    /// The id as the log spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::LoginFailed => "login-failed",
            Self::CaseView => "case-view",
            Self::Report => "report",
            Self::Search => "search",
            Self::Playback => "playback",
            Self::DiscBuild => "disc-build",
            Self::DiscBurn => "disc-burn",
            Self::Export => "export",
            Self::Download => "download",
            Self::AccessLog => "access-log",
        }
    }

    /// The action's name for people.
    pub fn name_zh(self) -> &'static str {
        match self {
            Self::Login => "登录",
            Self::LoginFailed => "登录失败",
            Self::CaseView => "查看案卷",
            Self::Report => "生成报告",
            Self::Search => "检索",
            Self::Playback => "播放",
            Self::DiscBuild => "制作光盘",
            Self::DiscBurn => "刻录光盘",
            Self::Export => "导出",
            Self::Download => "下载导出",
            Self::AccessLog => "查阅访问日志",
        }
    }
}

/// The most clip records one access event or request lists (a station record stays well
/// under its 64 KiB limit).
pub const MAX_EVENT_RECORDS: usize = 512;

/// One access event, written to the ledger and the log before any content is served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessFact {
    /// What was done.
    pub action: AccessAction,
    /// The person's id in the station (`None`: a failed login naming no account).
    pub person: Option<u64>,
    /// The role acted under.
    pub role: Option<Role>,
    /// The case, when the access is of one.
    pub case_number: Option<String>,
    /// The clip records whose content or metadata was served (at most
    /// [`MAX_EVENT_RECORDS`]; more are stated by `query` and `case_number`).
    pub records: Vec<RecordHash>,
    /// What a search or report asked for, in ids (device serial, period, case), or how
    /// many records an event served beyond the ones it lists.
    pub query: Option<String>,
    /// The request (its station record seq) the access was made under.
    pub request: Option<u64>,
    /// The decision records that approved it.
    pub approvals: Vec<RecordHash>,
}

/// What a request asks to be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ExportForm {
    /// 调阅: to view the clips at the station.
    View,
    /// 复制: a copy of the files (a folder).
    Copy,
    /// 刻盘: a disc image to burn and carry.
    Disc,
    /// 导出包: a package (folder and ISO image) that verifies on its own.
    Package,
}

impl ExportForm {
    /// The id as the CLI and the log spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Copy => "copy",
            Self::Disc => "disc",
            Self::Package => "package",
        }
    }

    /// The form's name for people.
    pub fn name_zh(self) -> &'static str {
        match self {
            Self::View => "调阅",
            Self::Copy => "复制",
            Self::Disc => "刻盘",
            Self::Package => "导出包",
        }
    }
}

/// A request to view or copy clips (调阅/复制申请). Its id is the seq of its station
/// record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestFact {
    /// The requester's id in the station.
    pub requester: u64,
    /// The role they asked under.
    pub role: Role,
    /// The case, when the whole case was asked for.
    pub case_number: Option<String>,
    /// The clip records asked for, exactly.
    pub records: Vec<RecordHash>,
    /// 事由: why.
    pub purpose: String,
    /// What is to be given.
    pub form: ExportForm,
    /// Where the copy goes (e.g. a court).
    pub destination: String,
    /// Whether it leaves the agency (对外提供).
    pub outside: bool,
    /// Whether the footage is sensitive (needs a second, higher approval).
    pub sensitive: bool,
}

/// A decision on a request: approved (naming the exact records and an expiry) or rejected
/// (with a reason).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionFact {
    /// The request's id (its station record seq).
    pub request: u64,
    /// The request's station record.
    pub request_record: RecordHash,
    /// The approver's id in the station.
    pub approver: u64,
    /// The role they decided under.
    pub role: Role,
    /// Approved or rejected.
    pub approved: bool,
    /// Why (required for a rejection).
    pub reason: Option<String>,
    /// The clip records approved, exactly the request's (empty for a rejection).
    pub records: Vec<RecordHash>,
    /// Until when the approval may be used (`None` for a rejection).
    pub expires: Option<DateTime<FixedOffset>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_ids() {
        for role in Role::ALL {
            assert_eq!(Role::from_id(role.as_str()), Some(role));
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{}\"", role.as_str()));
        }
        assert_eq!(Role::from_id("root"), None);
        let action = serde_json::to_string(&AccessAction::LoginFailed).unwrap();
        assert_eq!(action, "\"login-failed\"");
    }
}
