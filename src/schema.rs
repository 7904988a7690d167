//! The input contract as data: the tables clientseg reads, whether each is required,
//! and their canonical columns. Every stage that needs a table's columns asks here;
//! a new input table is one entry in [`SCHEMAS`] (and its validation plan).

use serde::{Deserialize, Serialize};

/// Which input table a column belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    Clients,
    Billing,
    Activity,
    Staff,
    Contacts,
}

/// One input table of the contract.
#[derive(Debug)]
pub struct TableSchema {
    pub table: Table,
    /// Its file name without extension, its config section and its name in messages.
    pub name: &'static str,
    /// Its name in Chinese messages.
    pub zh: &'static str,
    /// A run goes on without it (and switches off what needs it).
    pub optional: bool,
    /// The canonical columns, required ones first.
    pub columns: &'static [&'static str],
    pub required: &'static [&'static str],
}

/// Every input table, in the order they are read and validated.
pub const SCHEMAS: &[TableSchema] = &[
    TableSchema {
        table: Table::Clients,
        name: "clients",
        zh: "客户档案",
        optional: false,
        columns: &[
            "client_id",
            "name",
            "client_type",
            "taxpayer_type",
            "industry",
            "province",
            "city",
            "international",
            "employees",
            "annual_revenue",
            "services",
            "contract_start",
            "contract_end",
            "monthly_fee",
            "accountant",
        ],
        required: &["client_id"],
    },
    TableSchema {
        table: Table::Billing,
        name: "billing",
        zh: "收费记录",
        optional: false,
        columns: &[
            "client_id",
            "invoice_date",
            "amount",
            "service",
            "due_date",
            "paid_date",
        ],
        required: &["client_id", "invoice_date", "amount"],
    },
    TableSchema {
        table: Table::Activity,
        name: "activity",
        zh: "工作记录",
        optional: true,
        columns: &[
            "client_id",
            "month",
            "vouchers",
            "filings",
            "hours",
            "tickets",
            "late_documents",
            "accountant",
        ],
        required: &["client_id", "month"],
    },
    // The firm's accountants (for staff allocation): the name or id clients.accountant
    // uses, grade, monthly capacity in hours, skills, team, and whether still active.
    TableSchema {
        table: Table::Staff,
        name: "staff",
        zh: "员工名单",
        optional: true,
        columns: &["accountant", "grade", "capacity_hours", "skills", "team", "active"],
        required: &["accountant"],
    },
    // Contacts with clients (visits, calls, WeChat): when each client was last spoken to,
    // for the regular contact of its service plan.
    TableSchema {
        table: Table::Contacts,
        name: "contacts",
        zh: "联系记录",
        optional: true,
        columns: &["client_id", "date", "channel", "note"],
        required: &["client_id", "date"],
    },
];

/// A table an analysis reads besides the built-in ones, declared by that analysis
/// ([`crate::analysis::Analysis::inputs`]) end to end: the file's names (NAME or the
/// Chinese name, .csv / .xlsx), its columns with their kinds and Chinese headers, and
/// whether its rows belong to clients (then a row of an unknown client is rejected).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputTable {
    pub name: String,
    pub zh: String,
    pub columns: Vec<InputColumn>,
    /// Rows name a client in `client_id` (which must be one of the columns).
    pub per_client: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputColumn {
    pub name: String,
    /// The header a Chinese firm's export uses.
    pub zh: String,
    pub kind: ValueKind,
    pub required: bool,
}

/// How a declared input column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    Text,
    Number,
    Date,
}

impl InputColumn {
    pub fn new(name: &str, zh: &str, kind: ValueKind, required: bool) -> InputColumn {
        InputColumn {
            name: name.into(),
            zh: zh.into(),
            kind,
            required,
        }
    }
}

impl Table {
    /// Every table of [`SCHEMAS`], in order.
    pub fn all() -> impl Iterator<Item = Table> {
        SCHEMAS.iter().map(|s| s.table)
    }

    pub fn schema(self) -> &'static TableSchema {
        match SCHEMAS.iter().find(|s| s.table == self) {
            Some(s) => s,
            // Every variant has its entry; the test below holds that.
            None => &SCHEMAS[0],
        }
    }

    pub fn name(self) -> &'static str {
        self.schema().name
    }

    pub fn zh(self) -> &'static str {
        self.schema().zh
    }

    /// The canonical columns of the table, required ones first.
    pub fn columns(self) -> &'static [&'static str] {
        self.schema().columns
    }

    pub fn required(self) -> &'static [&'static str] {
        self.schema().required
    }

    pub fn optional(self) -> bool {
        self.schema().optional
    }

    pub fn from_name(name: &str) -> Option<Table> {
        SCHEMAS.iter().find(|s| s.name == name).map(|s| s.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_one_schema_with_its_required_columns_first() {
        for t in [
            Table::Clients,
            Table::Billing,
            Table::Activity,
            Table::Staff,
            Table::Contacts,
        ] {
            assert_eq!(SCHEMAS.iter().filter(|s| s.table == t).count(), 1, "{t:?}");
            let s = t.schema();
            assert_eq!(s.table, t);
            assert_eq!(&s.columns[..s.required.len()], s.required, "{t:?}");
            assert_eq!(Table::from_name(s.name), Some(t));
        }
    }
}
