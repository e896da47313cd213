//! SecLang variables (`ARGS`, `REQUEST_HEADERS:User-Agent`, `&TX:foo`,
//! `!REQUEST_COOKIES:/__utm/`): which collection a rule target names, its
//! selector, and the collections that exist only in response phases.

use super::seclang::{Selector, VarSpec};
use regex::bytes::Regex;

/// A collection or scalar variable of the request phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Var {
    Args,
    ArgsNames,
    ArgsGet,
    ArgsGetNames,
    ArgsPost,
    ArgsPostNames,
    ArgsCombinedSize,
    RequestHeaders,
    RequestHeadersNames,
    RequestCookies,
    RequestCookiesNames,
    RequestFilename,
    RequestBasename,
    RequestUri,
    RequestUriRaw,
    RequestLine,
    RequestMethod,
    RequestProtocol,
    QueryString,
    RequestBody,
    RequestBodyLength,
    Files,
    FilesNames,
    FilesSizes,
    FilesCombinedSize,
    MultipartPartHeaders,
    Xml,
    Tx,
    /// Persistent collections (`IP`, `GLOBAL`, `SESSION`, `USER`, `RESOURCE`):
    /// kept for the transaction only (nothing is persisted).
    Persistent(Persistent),
    Geo,
    Env,
    MatchedVar,
    MatchedVarName,
    MatchedVars,
    MatchedVarsNames,
    RemoteAddr,
    UniqueId,
    Duration,
    ReqbodyProcessor,
    ReqbodyError,
    ReqbodyErrorMsg,
    FullRequestLength,
    /// Flags the gateway's parser never raises (`MULTIPART_STRICT_ERROR`,
    /// `INBOUND_DATA_ERROR`, …): a malformed request is refused before the WAF.
    NeverSet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Persistent {
    Ip,
    Global,
    Session,
    User,
    Resource,
}

impl Persistent {
    /// The collection's prefix in the transaction's variable map.
    pub fn prefix(self) -> &'static str {
        match self {
            Persistent::Ip => "ip.",
            Persistent::Global => "global.",
            Persistent::Session => "session.",
            Persistent::User => "user.",
            Persistent::Resource => "resource.",
        }
    }
}

/// What a name means in a request phase.
pub enum Lookup {
    Var(Var),
    /// A response-phase variable (`RESPONSE_BODY`, …): a rule using it in a
    /// request phase is skipped.
    Response,
    Unknown,
}

impl Var {
    /// The variable named `name` (upper case).
    pub fn lookup(name: &str) -> Lookup {
        use Var::*;
        Lookup::Var(match name {
            "ARGS" => Args,
            "ARGS_NAMES" => ArgsNames,
            "ARGS_GET" => ArgsGet,
            "ARGS_GET_NAMES" => ArgsGetNames,
            "ARGS_POST" => ArgsPost,
            "ARGS_POST_NAMES" => ArgsPostNames,
            "ARGS_COMBINED_SIZE" => ArgsCombinedSize,
            "REQUEST_HEADERS" => RequestHeaders,
            "REQUEST_HEADERS_NAMES" => RequestHeadersNames,
            "REQUEST_COOKIES" => RequestCookies,
            "REQUEST_COOKIES_NAMES" => RequestCookiesNames,
            "REQUEST_FILENAME" | "PATH_INFO" | "SCRIPT_FILENAME" => RequestFilename,
            "REQUEST_BASENAME" => RequestBasename,
            "REQUEST_URI" => RequestUri,
            "REQUEST_URI_RAW" => RequestUriRaw,
            "REQUEST_LINE" => RequestLine,
            "REQUEST_METHOD" => RequestMethod,
            "REQUEST_PROTOCOL" => RequestProtocol,
            "QUERY_STRING" => QueryString,
            "REQUEST_BODY" => RequestBody,
            "REQUEST_BODY_LENGTH" => RequestBodyLength,
            "FILES" | "MULTIPART_FILENAME" => Files,
            "FILES_NAMES" | "MULTIPART_NAME" => FilesNames,
            "FILES_SIZES" => FilesSizes,
            "FILES_COMBINED_SIZE" => FilesCombinedSize,
            "MULTIPART_PART_HEADERS" => MultipartPartHeaders,
            "XML" => Xml,
            "TX" => Tx,
            "IP" => Persistent(self::Persistent::Ip),
            "GLOBAL" => Persistent(self::Persistent::Global),
            "SESSION" => Persistent(self::Persistent::Session),
            "USER" => Persistent(self::Persistent::User),
            "RESOURCE" => Persistent(self::Persistent::Resource),
            "GEO" => Geo,
            "ENV" => Env,
            "MATCHED_VAR" => MatchedVar,
            "MATCHED_VAR_NAME" => MatchedVarName,
            "MATCHED_VARS" => MatchedVars,
            "MATCHED_VARS_NAMES" => MatchedVarsNames,
            "REMOTE_ADDR" => RemoteAddr,
            "UNIQUE_ID" => UniqueId,
            "DURATION" => Duration,
            "REQBODY_PROCESSOR" => ReqbodyProcessor,
            "REQBODY_ERROR" => ReqbodyError,
            "REQBODY_ERROR_MSG" => ReqbodyErrorMsg,
            "FULL_REQUEST_LENGTH" => FullRequestLength,
            "MULTIPART_STRICT_ERROR"
            | "MULTIPART_UNMATCHED_BOUNDARY"
            | "MULTIPART_BOUNDARY_QUOTED"
            | "MULTIPART_BOUNDARY_WHITESPACE"
            | "MULTIPART_DATA_AFTER"
            | "MULTIPART_DATA_BEFORE"
            | "MULTIPART_HEADER_FOLDING"
            | "MULTIPART_LF_LINE"
            | "MULTIPART_MISSING_SEMICOLON"
            | "MULTIPART_INVALID_QUOTING"
            | "MULTIPART_INVALID_PART"
            | "MULTIPART_INVALID_HEADER_FOLDING"
            | "MULTIPART_FILE_LIMIT_EXCEEDED"
            | "MULTIPART_CRLF_LF_LINES"
            | "INBOUND_DATA_ERROR"
            | "URLENCODED_ERROR" => NeverSet,
            n if n.starts_with("RESPONSE_") || n == "STATUS_LINE" || n == "OUTBOUND_DATA_ERROR" => {
                return Lookup::Response
            }
            _ => return Lookup::Unknown,
        })
    }

    /// The name as rules and logs write it.
    pub fn name(self) -> &'static str {
        use Var::*;
        match self {
            Args => "ARGS",
            ArgsNames => "ARGS_NAMES",
            ArgsGet => "ARGS_GET",
            ArgsGetNames => "ARGS_GET_NAMES",
            ArgsPost => "ARGS_POST",
            ArgsPostNames => "ARGS_POST_NAMES",
            ArgsCombinedSize => "ARGS_COMBINED_SIZE",
            RequestHeaders => "REQUEST_HEADERS",
            RequestHeadersNames => "REQUEST_HEADERS_NAMES",
            RequestCookies => "REQUEST_COOKIES",
            RequestCookiesNames => "REQUEST_COOKIES_NAMES",
            RequestFilename => "REQUEST_FILENAME",
            RequestBasename => "REQUEST_BASENAME",
            RequestUri => "REQUEST_URI",
            RequestUriRaw => "REQUEST_URI_RAW",
            RequestLine => "REQUEST_LINE",
            RequestMethod => "REQUEST_METHOD",
            RequestProtocol => "REQUEST_PROTOCOL",
            QueryString => "QUERY_STRING",
            RequestBody => "REQUEST_BODY",
            RequestBodyLength => "REQUEST_BODY_LENGTH",
            Files => "FILES",
            FilesNames => "FILES_NAMES",
            FilesSizes => "FILES_SIZES",
            FilesCombinedSize => "FILES_COMBINED_SIZE",
            MultipartPartHeaders => "MULTIPART_PART_HEADERS",
            Xml => "XML",
            Tx => "TX",
            Persistent(p) => match p {
                self::Persistent::Ip => "IP",
                self::Persistent::Global => "GLOBAL",
                self::Persistent::Session => "SESSION",
                self::Persistent::User => "USER",
                self::Persistent::Resource => "RESOURCE",
            },
            Geo => "GEO",
            Env => "ENV",
            MatchedVar => "MATCHED_VAR",
            MatchedVarName => "MATCHED_VAR_NAME",
            MatchedVars => "MATCHED_VARS",
            MatchedVarsNames => "MATCHED_VARS_NAMES",
            RemoteAddr => "REMOTE_ADDR",
            UniqueId => "UNIQUE_ID",
            Duration => "DURATION",
            ReqbodyProcessor => "REQBODY_PROCESSOR",
            ReqbodyError => "REQBODY_ERROR",
            ReqbodyErrorMsg => "REQBODY_ERROR_MSG",
            FullRequestLength => "FULL_REQUEST_LENGTH",
            NeverSet => "NEVER_SET",
        }
    }

    /// Whether the variable is only filled once the body is read (phase 2).
    pub fn needs_body(self) -> bool {
        use Var::*;
        matches!(
            self,
            ArgsPost
                | ArgsPostNames
                | RequestBody
                | RequestBodyLength
                | Files
                | FilesNames
                | FilesSizes
                | FilesCombinedSize
                | MultipartPartHeaders
                | Xml
                | ReqbodyProcessor
                | ReqbodyError
                | ReqbodyErrorMsg
        )
    }
}

/// Which members of a collection a target takes.
#[derive(Debug, Clone)]
pub enum Select {
    All,
    /// A member by name (lower case; names compare ignoring ASCII case, as in
    /// libmodsecurity v3).
    Name(Vec<u8>),
    /// Members whose name matches (case-insensitively).
    Regex(Regex),
}

impl Select {
    pub fn from_spec(sel: &Option<Selector>) -> Result<Select, String> {
        Ok(match sel {
            None => Select::All,
            Some(Selector::Name(n)) => Select::Name(n.to_ascii_lowercase().into_bytes()),
            Some(Selector::Regex(r)) => Select::Regex(
                regex::bytes::RegexBuilder::new(r)
                    .case_insensitive(true)
                    .unicode(false)
                    .build()
                    .map_err(|e| format!("selector /{r}/ does not compile: {e}"))?,
            ),
        })
    }

    pub fn takes(&self, name: &[u8]) -> bool {
        match self {
            Select::All => true,
            Select::Name(n) => name.eq_ignore_ascii_case(n),
            Select::Regex(r) => r.is_match(name),
        }
    }

    /// Whether two selectors are spelled the same (for exclusions that name the
    /// same member a target does).
    fn same(&self, other: &Select) -> bool {
        match (self, other) {
            (Select::All, Select::All) => true,
            (Select::Name(a), Select::Name(b)) => a == b,
            (Select::Regex(a), Select::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

/// One rule target: `ARGS`, `REQUEST_HEADERS:Referer`, `&TX:x`.
#[derive(Debug, Clone)]
pub struct Target {
    pub var: Var,
    pub select: Select,
    /// `&`: the number of members instead of their values.
    pub count: bool,
}

/// A rule's targets and the members it excludes (`!ARGS:id`).
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub list: Vec<Target>,
    pub excluded: Vec<(Var, Select)>,
}

impl Targets {
    /// Adds `specs` (a rule's variable list, or `SecRuleUpdateTargetById`'s).
    /// `Err(Some(name))`: a response-phase variable.
    pub fn add(&mut self, specs: &[VarSpec]) -> Result<(), TargetError> {
        for s in specs {
            let var = match Var::lookup(&s.collection.to_ascii_uppercase()) {
                Lookup::Var(v) => v,
                Lookup::Response => return Err(TargetError::Response(s.collection.clone())),
                Lookup::Unknown => {
                    return Err(TargetError::Unknown(s.collection.clone()));
                }
            };
            let select = Select::from_spec(&s.selector).map_err(TargetError::Selector)?;
            if s.exclude {
                self.excluded.push((var, select));
            } else {
                self.list.push(Target {
                    var,
                    select,
                    count: s.count,
                });
            }
        }
        Ok(())
    }

    /// Replaces the target spelled like `old` with `new` (`SecRuleUpdateTargetById
    /// ID NEW OLD`); false if there is none.
    pub fn replace(&mut self, old: &VarSpec, new: &[VarSpec]) -> Result<bool, TargetError> {
        let Lookup::Var(var) = Var::lookup(&old.collection.to_ascii_uppercase()) else {
            return Ok(false);
        };
        let select = Select::from_spec(&old.selector).map_err(TargetError::Selector)?;
        let Some(at) = self
            .list
            .iter()
            .position(|t| t.var == var && t.select.same(&select) && t.count == old.count)
        else {
            return Ok(false);
        };
        self.list.remove(at);
        self.add(new)?;
        Ok(true)
    }

    /// Whether the member `name` of `var` is excluded.
    pub fn excludes(&self, var: Var, name: &[u8]) -> bool {
        self.excluded
            .iter()
            .any(|(v, s)| same_collection(*v, var) && s.takes(name))
    }

    pub fn needs_body(&self) -> bool {
        self.list
            .iter()
            .any(|t| t.var.needs_body() || t.var == Var::Args)
    }
}

/// `!ARGS:x` also excludes `x` from `ARGS_GET` and `ARGS_POST` (they are parts
/// of `ARGS`), and `!ARGS_GET:x` from `ARGS`.
pub fn same_collection(excluded: Var, target: Var) -> bool {
    use Var::*;
    excluded == target
        || matches!(
            (excluded, target),
            (Args, ArgsGet | ArgsPost)
                | (ArgsGet | ArgsPost, Args)
                | (ArgsNames, ArgsGetNames | ArgsPostNames)
                | (ArgsGetNames | ArgsPostNames, ArgsNames)
        )
}

#[derive(Debug)]
pub enum TargetError {
    Response(String),
    Unknown(String),
    Selector(String),
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetError::Response(n) => write!(f, "{n} exists only in response phases"),
            TargetError::Unknown(n) => write!(f, "variable {n} is not supported"),
            TargetError::Selector(e) => f.write_str(e),
        }
    }
}
