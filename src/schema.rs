//! The input contract as data: the tables clientseg reads and their canonical columns.
//! Every stage that needs a table's columns asks here; nothing below it is imported.

use serde::{Deserialize, Serialize};

/// Which input table a column belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    Clients,
    Billing,
    Activity,
}

impl Table {
    pub const ALL: [Table; 3] = [Table::Clients, Table::Billing, Table::Activity];

    pub fn name(self) -> &'static str {
        match self {
            Table::Clients => "clients",
            Table::Billing => "billing",
            Table::Activity => "activity",
        }
    }

    /// The canonical columns of the table, required ones first.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Table::Clients => &[
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
            Table::Billing => &[
                "client_id",
                "invoice_date",
                "amount",
                "service",
                "due_date",
                "paid_date",
            ],
            Table::Activity => &[
                "client_id",
                "month",
                "vouchers",
                "filings",
                "hours",
                "tickets",
                "late_documents",
            ],
        }
    }

    pub fn required(self) -> &'static [&'static str] {
        match self {
            Table::Clients => &["client_id"],
            Table::Billing => &["client_id", "invoice_date", "amount"],
            Table::Activity => &["client_id", "month"],
        }
    }
}
