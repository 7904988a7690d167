"""Writes the export corpus in this folder: one firm's history laid out the way eight
kinds of exports lay it out (Chinese 代账 software styles, a firm's own Excel sheets,
GBK CSV, a workbook of many sheets, invoicing software, a CRM, an English export,
Excel's UTF-16 "Unicode text").

Each folder gets `expected.toml`: which file (and sheet) holds which table, and which
header is which column of the contract. The layouts below are the source of that truth,
written independently of clientseg's own vocabulary, which the tests check against it.

The files are committed; run this only to change the corpus (it needs openpyxl):
    python3 tests/exports/make_corpus.py
"""

import csv
import datetime as dt
import os
import random

import openpyxl

HERE = os.path.dirname(os.path.abspath(__file__))
FIRST = dt.date(2024, 1, 1)
LAST = dt.date(2025, 12, 31)
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def uscc(rng):
    """A unified social credit code with a valid check character (GB 32100-2015)."""
    body = "91" + "".join(rng.choice("0123456789") for _ in range(6)) + "".join(
        rng.choice(USCC_CHARS) for _ in range(9)
    )
    total = sum(USCC_CHARS.index(c) * w for c, w in zip(body, USCC_WEIGHTS))
    return body + USCC_CHARS[(31 - total % 31) % 31]


def months(start, end):
    y, m = start.year, start.month
    while (y, m) <= (end.year, end.month):
        yield dt.date(y, m, 1)
        m += 1
        if m == 13:
            y, m = y + 1, 1


def add_days(d, n):
    return d + dt.timedelta(days=n)


def firm(seed=2026, n=90):
    rng = random.Random(seed)
    staff = [
        ("张敏", "主管", 160, "制造业", "一组", True),
        ("李娜", "中级", 168, "批发零售", "一组", True),
        ("王芳", "中级", 168, "餐饮", "二组", True),
        ("刘洋", "初级", 176, "", "二组", True),
        ("陈静", "初级", 176, "信息技术", "三组", True),
        ("赵磊", "中级", 168, "建筑", "三组", False),
    ]
    industries = ["制造业", "批发和零售业", "住宿和餐饮业", "信息技术服务业", "建筑业", "租赁和商务服务业"]
    places = [("广东省", "深圳市"), ("广东省", "广州市"), ("浙江省", "杭州市"), ("江苏省", "苏州市"), ("上海市", "上海市")]
    names = "华鑫 宏达 金诚 瑞丰 恒通 新锐 博远 嘉禾 鼎盛 汇智 天成 永安 盛世 德信 佳和".split()
    clients = []
    for i in range(n):
        general = rng.random() < 0.3
        ctype = rng.choices(["enterprise", "individual_business", "person"], [0.75, 0.2, 0.05])[0]
        fee = rng.choice([800, 1000, 1200, 1500]) if general else rng.choice([200, 250, 300])
        start = add_days(dt.date(2022, 1, 1), rng.randrange(0, 1250))
        end = None
        if rng.random() < 0.25:
            end_m = list(months(max(start, FIRST), LAST))
            if len(end_m) > 4:
                e = end_m[rng.randrange(3, len(end_m))]
                end = add_days(dt.date(e.year + (e.month == 12), e.month % 12 + 1, 1), -1)
        place = rng.choice(places)
        clients.append(
            dict(
                no=f"KH{1001 + i}",
                uscc=uscc(rng),
                name=f"{place[1][:2]}{rng.choice(names)}{rng.choice(['科技', '贸易', '餐饮', '建材', '商务'])}有限公司{i}",
                ctype=ctype,
                general=general,
                industry=rng.choice(industries),
                province=place[0],
                city=place[1],
                foreign=rng.random() < 0.08,
                employees=rng.randrange(2, 120),
                fee=fee,
                accountant=rng.choice(staff[:5])[0],
                start=start,
                end=end,
                services="记账报税;工商年报" if rng.random() < 0.5 else "记账报税",
                annual=rng.random() < 0.15,
            )
        )
    bills, work, contacts = [], [], []
    for c in clients:
        last = c["end"] or LAST
        span = list(months(max(c["start"], FIRST), last))
        for k, m in enumerate(span):
            inv = add_days(m, rng.randrange(0, 5))
            paid = add_days(inv, rng.randrange(0, 45)) if rng.random() < 0.9 or m.year < 2025 else None
            if paid and paid > LAST:
                paid = None
            # Some clients prepay a year at a time (a year's fee on one invoice).
            if not c["annual"]:
                bills.append(dict(c=c, date=inv, amount=c["fee"], service="代理记账", due=add_days(inv, 15), paid=paid))
            elif k % 12 == 0:
                bills.append(dict(c=c, date=inv, amount=c["fee"] * 12, service="代理记账（年付）", due=add_days(inv, 15), paid=add_days(inv, 3)))
            vouchers = rng.randrange(50, 300) if c["general"] else rng.randrange(5, 50)
            work.append(
                dict(
                    c=c,
                    month=m,
                    vouchers=vouchers,
                    filings=3 if c["general"] else (2 if m.month % 3 == 0 else 1),
                    hours=round(vouchers / 12 + rng.random() * 3, 1),
                    tickets=rng.randrange(0, 4),
                    late=rng.random() < 0.2,
                    accountant=c["accountant"],
                )
            )
            if rng.random() < 0.2:
                contacts.append(dict(c=c, date=add_days(m, rng.randrange(5, 25)), channel=rng.choice(["电话", "微信", "上门"]), note="月度回访"))
        if rng.random() < 0.4 and c["start"] < dt.date(2025, 3, 1):
            d = dt.date(2025, 4, rng.randrange(10, 28))
            if d <= last:
                bills.append(dict(c=c, date=d, amount=rng.choice([600, 800, 1200]), service="汇算清缴", due=add_days(d, 15), paid=add_days(d, 10)))
    return clients, bills, work, staff, contacts


# The words of each style. (header, canonical column or None, how to write the value)
ZH_TYPE = {"enterprise": "有限责任公司", "individual_business": "个体工商户", "person": "个人"}


def ymd(d):
    return d.isoformat() if d else ""


def slash(d):
    return f"{d.year}/{d.month}/{d.day}" if d else ""


def cn_date(d):
    return f"{d.year}年{d.month}月{d.day}日" if d else ""


def money(x):
    return f"{x:,.2f}"


def serial(d):
    return (d - dt.date(1899, 12, 30)).days if d else None


class Table:
    def __init__(self, table, file, rows, columns, sheet=None, header_row=1):
        self.table, self.file, self.rows, self.columns = table, file, rows, columns
        self.sheet, self.header_row = sheet, header_row

    def header(self):
        return [h for h, _, _ in self.columns]

    def body(self):
        return [[f(r) for _, _, f in self.columns] for r in self.rows]

    def mapping(self):
        return {c: h for h, c, _ in self.columns if c}


def write_csv(folder, t, encoding="utf-8", above=(), below=(), delimiter=","):
    with open(os.path.join(folder, t.file), "w", encoding=encoding, newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        for row in above:
            w.writerow(row)
        w.writerow(t.header())
        for row in t.body():
            w.writerow(row)
        for row in below:
            w.writerow(row)
    t.header_row = len(above) + 1


def sheet_rows(ws, t, above=(), below=()):
    for row in above:
        ws.append(list(row))
    ws.append(t.header())
    for row in t.body():
        ws.append(row)
    for row in below:
        ws.append(list(row))
    t.header_row = len(above) + 1


def expected(folder, tables):
    lines = ["# What clientseg must find in this folder (written by make_corpus.py).", ""]
    for t in tables:
        lines.append(f"[{t.table}]")
        lines.append(f'file = "{t.file}"')
        if t.sheet:
            lines.append(f'sheet = "{t.sheet}"')
        lines.append(f"header_row = {t.header_row}")
        lines.append(f"[{t.table}.columns]")
        for c, h in t.mapping().items():
            lines.append(f'{c} = "{h}"')
        lines.append("")
    with open(os.path.join(folder, "expected.toml"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def folder(name):
    p = os.path.join(HERE, name)
    os.makedirs(p, exist_ok=True)
    for f in os.listdir(p):
        os.remove(os.path.join(p, f))
    return p


def kingdee(clients, bills, work, staff, contacts):
    """金蝶账无忧-style xlsx: a title row and an export line above the archive's header,
    是/否 columns, a 合计 row under the billing, 在职/离职 staff."""
    p = folder("kingdee_style")
    cl = Table("clients", "客户档案.xlsx", clients, [
        ("客户编码", "client_id", lambda c: c["no"]),
        ("客户名称", "name", lambda c: c["name"]),
        ("企业类型", "client_type", lambda c: ZH_TYPE[c["ctype"]]),
        ("纳税性质", "taxpayer_type", lambda c: "一般纳税人" if c["general"] else "小规模纳税人"),
        ("所属行业", "industry", lambda c: c["industry"]),
        ("所在地区", "province", lambda c: c["province"]),
        ("涉外", "international", lambda c: "是" if c["foreign"] else "否"),
        ("服务费(元/月)", "monthly_fee", lambda c: c["fee"]),
        ("负责会计", "accountant", lambda c: c["accountant"]),
        ("建账日期", "contract_start", lambda c: c["start"]),
        ("服务到期日", "contract_end", lambda c: c["end"]),
        ("联系人", None, lambda c: "王先生"),
        ("联系电话", None, lambda c: "13800000000"),
    ])
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "客户档案"
    sheet_rows(ws, cl, above=[("客户档案（导出日期：2026-01-02）",), ("制表人：管理员",), ()])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=13)
    for row in ws.iter_rows(min_row=5):
        for cell in row:
            if isinstance(cell.value, dt.date):
                cell.number_format = "yyyy-mm-dd"
    wb.save(os.path.join(p, cl.file))

    bl = Table("billing", "收费明细.xlsx", bills, [
        ("序号", None, lambda b: None),
        ("客户编码", "client_id", lambda b: b["c"]["no"]),
        ("客户名称", None, lambda b: b["c"]["name"]),
        ("收费项目", "service", lambda b: b["service"]),
        ("收费日期", "invoice_date", lambda b: b["date"]),
        ("收费金额(元)", "amount", lambda b: b["amount"]),
        ("应收日期", "due_date", lambda b: b["due"]),
        ("实收日期", "paid_date", lambda b: b["paid"]),
    ])
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "收费明细"
    sheet_rows(ws, bl, below=[("合计", None, None, None, None, sum(b["amount"] for b in bills))])
    for i, row in enumerate(ws.iter_rows(min_row=2, max_row=len(bills) + 1), start=1):
        row[0].value = i
        for cell in row[4:]:
            if isinstance(cell.value, dt.date):
                cell.number_format = "yyyy-mm-dd"
    wb.save(os.path.join(p, bl.file))

    wk = Table("activity", "工作记录.xlsx", work, [
        ("客户编码", "client_id", lambda w: w["c"]["no"]),
        ("客户名称", None, lambda w: w["c"]["name"]),
        ("期间", "month", lambda w: f"{w['month'].year}-{w['month'].month:02d}"),
        ("凭证张数", "vouchers", lambda w: w["vouchers"]),
        ("工时(小时)", "hours", lambda w: w["hours"]),
        ("资料是否延迟", "late_documents", lambda w: "是" if w["late"] else "否"),
        ("咨询次数", "tickets", lambda w: w["tickets"]),
        ("记账会计", "accountant", lambda w: w["accountant"]),
    ])
    wb = openpyxl.Workbook()
    sheet_rows(wb.active, wk)
    wb.save(os.path.join(p, wk.file))

    st = Table("staff", "员工名单.xlsx", staff, [
        ("工号", None, lambda s: f"E{staff.index(s) + 1:03d}"),
        ("姓名", "accountant", lambda s: s[0]),
        ("岗位级别", "grade", lambda s: s[1]),
        ("月可用工时", "capacity_hours", lambda s: s[2]),
        ("擅长行业", "skills", lambda s: s[3]),
        ("所属部门", "team", lambda s: s[4]),
        ("状态", "active", lambda s: "在职" if s[5] else "离职"),
    ])
    wb = openpyxl.Workbook()
    sheet_rows(wb.active, st)
    wb.save(os.path.join(p, st.file))
    expected(p, [cl, bl, wk, st])


def chanjet(clients, bills, work, staff, contacts):
    """畅捷通-style GBK CSV: 2024/1/5 dates, amounts with thousands separators, periods
    written 2024年01期, no staff list."""
    p = folder("chanjet_style_gbk")
    cl = Table("clients", "客户信息.csv", clients, [
        ("客户代码", "client_id", lambda c: c["no"]),
        ("公司名称", "name", lambda c: c["name"]),
        ("纳税人类型", "taxpayer_type", lambda c: "一般纳税人" if c["general"] else "小规模"),
        ("行业", "industry", lambda c: c["industry"]),
        ("省份", "province", lambda c: c["province"]),
        ("城市", "city", lambda c: c["city"]),
        ("月服务费", "monthly_fee", lambda c: money(c["fee"])),
        ("主办会计", "accountant", lambda c: c["accountant"]),
        ("合同开始日期", "contract_start", lambda c: slash(c["start"])),
        ("合同结束日期", "contract_end", lambda c: slash(c["end"])),
        ("服务项目", "services", lambda c: c["services"].replace(";", "、")),
    ])
    write_csv(p, cl, encoding="gbk")
    bl = Table("billing", "收款记录.csv", bills, [
        ("客户代码", "client_id", lambda b: b["c"]["no"]),
        ("账单日期", "invoice_date", lambda b: slash(b["date"])),
        ("应收金额", "amount", lambda b: money(b["amount"])),
        ("收款日期", "paid_date", lambda b: slash(b["paid"])),
        ("收费类型", "service", lambda b: b["service"]),
    ])
    write_csv(p, bl, encoding="gbk")
    wk = Table("activity", "记账明细.csv", work, [
        ("客户代码", "client_id", lambda w: w["c"]["no"]),
        ("会计期间", "month", lambda w: f"{w['month'].year}年{w['month'].month:02d}期"),
        ("凭证数", "vouchers", lambda w: w["vouchers"]),
        ("申报次数", "filings", lambda w: w["filings"]),
        ("耗时", "hours", lambda w: w["hours"]),
        ("资料延迟次数", "late_documents", lambda w: int(w["late"])),
    ])
    write_csv(p, wk, encoding="gbk")
    expected(p, [cl, bl, wk])


def one_workbook(clients, bills, work, staff, contacts):
    """云帐房-style: one workbook, a sheet per table; dates stored as Excel day numbers in
    cells not formatted as dates; periods as numbers (202401)."""
    p = folder("one_workbook_serial_dates")
    cl = Table("clients", "导出数据.xlsx", clients, [
        ("客户编号", "client_id", lambda c: c["no"]),
        ("客户名称", "name", lambda c: c["name"]),
        ("客户类型", "client_type", lambda c: {"enterprise": "企业", "individual_business": "个体户", "person": "个人"}[c["ctype"]]),
        ("纳税人资格", "taxpayer_type", lambda c: "一般人" if c["general"] else "小规模"),
        ("行业类型", "industry", lambda c: c["industry"]),
        ("所属地区", "province", lambda c: c["province"]),
        ("城市", "city", lambda c: c["city"]),
        ("月收费标准", "monthly_fee", lambda c: c["fee"]),
        ("服务会计", "accountant", lambda c: c["accountant"]),
        ("签约日期", "contract_start", lambda c: serial(c["start"])),
        ("解约日期", "contract_end", lambda c: serial(c["end"])),
    ], sheet="客户列表")
    bl = Table("billing", "导出数据.xlsx", bills, [
        ("客户编号", "client_id", lambda b: b["c"]["no"]),
        ("开票日期", "invoice_date", lambda b: serial(b["date"])),
        ("开票金额", "amount", lambda b: b["amount"]),
        ("到账日期", "paid_date", lambda b: serial(b["paid"])),
    ], sheet="收费")
    wk = Table("activity", "导出数据.xlsx", work, [
        ("客户编号", "client_id", lambda w: w["c"]["no"]),
        ("所属期间", "month", lambda w: w["month"].year * 100 + w["month"].month),
        ("凭证量", "vouchers", lambda w: w["vouchers"]),
        ("报税次数", "filings", lambda w: w["filings"]),
        ("工时数", "hours", lambda w: w["hours"]),
        ("问题数", "tickets", lambda w: w["tickets"]),
    ], sheet="工作量")
    st = Table("staff", "导出数据.xlsx", staff, [
        ("姓名", "accountant", lambda s: s[0]),
        ("职级", "grade", lambda s: {"主管": "主管", "中级": "会计", "初级": "助理"}[s[1]]),
        ("可用工时", "capacity_hours", lambda s: s[2]),
        ("团队", "team", lambda s: s[4]),
        ("在职状态", "active", lambda s: ("在职" if staff.index(s) % 2 else "试用") if s[5] else "离职"),
    ], sheet="人员")
    wb = openpyxl.Workbook()
    first = True
    for t in (cl, bl, wk, st):
        ws = wb.active if first else wb.create_sheet()
        first = False
        ws.title = t.sheet
        sheet_rows(ws, t)
    wb.save(os.path.join(p, cl.file))
    expected(p, [cl, bl, wk, st])


def merged_headers(clients, bills, work, staff, contacts):
    """慧算账-style: headers two rows high, groups merged over their columns and single
    columns merged down; the state's credit code beside the firm's number."""
    p = folder("merged_two_row_headers")

    def two_rows(ws, groups, t):
        # groups: list of (group title or None, number of columns)
        col = 1
        leaf = t.header()
        for title, n in groups:
            if title is None:
                for k in range(n):
                    ws.cell(row=1, column=col + k, value=leaf[col + k - 1])
                    ws.merge_cells(start_row=1, start_column=col + k, end_row=2, end_column=col + k)
            else:
                ws.cell(row=1, column=col, value=title)
                ws.merge_cells(start_row=1, start_column=col, end_row=1, end_column=col + n - 1)
                for k in range(n):
                    ws.cell(row=2, column=col + k, value=leaf[col + k - 1])
            col += n
        for r in t.body():
            ws.append(r)
        t.header_row = 2

    cl = Table("clients", "客户档案.xlsx", clients, [
        ("客户编码", "client_id", lambda c: c["no"]),
        ("客户名称", "name", lambda c: c["name"]),
        ("纳税性质", "taxpayer_type", lambda c: "一般纳税人" if c["general"] else "小规模纳税人"),
        ("统一社会信用代码", None, lambda c: c["uscc"]),
        ("服务费（元/月）", "monthly_fee", lambda c: c["fee"]),
        ("主办会计", "accountant", lambda c: c["accountant"]),
        ("服务开始日期", "contract_start", lambda c: c["start"]),
        ("服务结束日期", "contract_end", lambda c: c["end"]),
    ])
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "客户"
    two_rows(ws, [(None, 2), ("税务信息", 2), ("服务信息", 4)], cl)
    wb.save(os.path.join(p, cl.file))
    bl = Table("billing", "收费明细.xlsx", bills, [
        ("客户编码", "client_id", lambda b: b["c"]["no"]),
        ("收费日期", "invoice_date", lambda b: b["date"]),
        ("收费项目", "service", lambda b: b["service"]),
        ("收费金额（元）", "amount", lambda b: b["amount"]),
        ("实收日期", "paid_date", lambda b: b["paid"]),
        ("实收金额（元）", None, lambda b: b["amount"] if b["paid"] else None),
    ])
    wb = openpyxl.Workbook()
    two_rows(wb.active, [(None, 1), ("收费信息", 3), ("收款信息", 2)], bl)
    wb.save(os.path.join(p, bl.file))
    wk = Table("activity", "工作记录.xlsx", work, [
        ("客户编码", "client_id", lambda w: w["c"]["no"]),
        ("期间", "month", lambda w: f"{w['month'].year}-{w['month'].month:02d}"),
        ("凭证张数", "vouchers", lambda w: w["vouchers"]),
        ("工时（小时）", "hours", lambda w: w["hours"]),
        ("资料是否延迟", "late_documents", lambda w: "是" if w["late"] else "否"),
    ])
    wb = openpyxl.Workbook()
    sheet_rows(wb.active, wk)
    wb.save(os.path.join(p, wk.file))
    expected(p, [cl, bl, wk])


def own_sheets(clients, bills, work, staff, contacts):
    """A firm's own Excel sheets saved as CSV (UTF-8 with BOM): full-width brackets,
    dates 2024年1月5日, amounts ¥1,200.00 and 1.2万, 小计 rows between the months, a
    合计 row and a note under the billing, a visit log."""
    p = folder("own_sheets_csv")
    cl = Table("clients", "客户名单.csv", clients, [
        ("客户编号", "client_id", lambda c: c["no"]),
        ("客户全称", "name", lambda c: c["name"]),
        ("纳税人身份", "taxpayer_type", lambda c: "一般纳税人" if c["general"] else "小规模纳税人"),
        ("行业", "industry", lambda c: c["industry"]),
        ("地区", "province", lambda c: c["province"]),
        ("员工人数", "employees", lambda c: c["employees"]),
        ("月费（元）", "monthly_fee", lambda c: c["fee"]),
        ("会计", "accountant", lambda c: c["accountant"]),
        ("开始服务日期", "contract_start", lambda c: cn_date(c["start"])),
        ("备注", None, lambda c: ""),
    ])
    write_csv(p, cl, encoding="utf-8-sig")
    ordered = sorted(bills, key=lambda b: b["date"])
    rows = []
    for b in ordered:
        if rows and rows[-1]["date"].month != b["date"].month and b["date"].month in (4, 7):
            rows.append(dict(subtotal=True, amount=sum(r.get("amount", 0) for r in rows if not r.get("subtotal"))))
        rows.append(b)
    def amt(b):
        if b["amount"] >= 10000:
            return f"{b['amount'] / 10000:g}万"
        return f"¥{b['amount']:,.2f}"
    bl = Table("billing", "收费台账.csv", rows, [
        ("客户编号", "client_id", lambda b: "小计" if b.get("subtotal") else b["c"]["no"]),
        ("开票日期", "invoice_date", lambda b: "" if b.get("subtotal") else cn_date(b["date"])),
        ("金额", "amount", amt),
        ("到账日期", "paid_date", lambda b: "" if b.get("subtotal") else cn_date(b["paid"])),
        ("备注", None, lambda b: ""),
    ])
    write_csv(p, bl, encoding="utf-8-sig", below=[("合计", "", f"¥{sum(b['amount'] for b in bills):,.2f}", "", ""), ("制表人：李会计",)])
    bl.rows = ordered
    wk = Table("activity", "做账记录.csv", work, [
        ("客户编号", "client_id", lambda w: w["c"]["no"]),
        ("月份", "month", lambda w: f"{w['month'].year}-{w['month'].month:02d}"),
        ("凭证（张）", "vouchers", lambda w: w["vouchers"]),
        ("工时（小时）", "hours", lambda w: w["hours"]),
        ("资料延迟", "late_documents", lambda w: int(w["late"])),
    ])
    write_csv(p, wk, encoding="utf-8-sig")
    st = Table("staff", "会计名单.csv", staff, [
        ("会计姓名", "accountant", lambda s: s[0]),
        ("级别", "grade", lambda s: s[1]),
        ("每月可用工时", "capacity_hours", lambda s: s[2]),
        ("团队", "team", lambda s: s[4]),
        ("是否在职", "active", lambda s: "是" if s[5] else "否"),
    ])
    write_csv(p, st, encoding="utf-8-sig")
    ct = Table("contacts", "回访记录.csv", contacts, [
        ("客户编号", "client_id", lambda x: x["c"]["no"]),
        ("回访日期", "date", lambda x: cn_date(x["date"])),
        ("回访方式", "channel", lambda x: x["channel"]),
        ("回访内容", "note", lambda x: x["note"]),
    ])
    write_csv(p, ct, encoding="utf-8-sig")
    expected(p, [cl, bl, wk, st, ct])


def english(clients, bills, work, staff, contacts):
    """An English export: customers, invoices, timesheets, staff and follow-ups."""
    p = folder("english_export")
    en_type = {"enterprise": "Limited company", "individual_business": "Individual business", "person": "Person"}
    cl = Table("clients", "customers.csv", clients, [
        ("Customer ID", "client_id", lambda c: c["no"]),
        ("Company Name", "name", lambda c: c["name"]),
        ("Entity Type", "client_type", lambda c: en_type[c["ctype"]]),
        ("Taxpayer Type", "taxpayer_type", lambda c: "General" if c["general"] else "Small-scale"),
        ("Industry", "industry", lambda c: c["industry"]),
        ("Province", "province", lambda c: c["province"]),
        ("City", "city", lambda c: c["city"]),
        ("Foreign Owned", "international", lambda c: "Yes" if c["foreign"] else "No"),
        ("Employees", "employees", lambda c: c["employees"]),
        ("Monthly Fee", "monthly_fee", lambda c: money(c["fee"])),
        ("Accountant", "accountant", lambda c: c["accountant"]),
        ("Start Date", "contract_start", lambda c: ymd(c["start"])),
        ("End Date", "contract_end", lambda c: ymd(c["end"])),
    ])
    write_csv(p, cl)
    bl = Table("billing", "invoices.csv", bills, [
        ("Customer ID", "client_id", lambda b: b["c"]["no"]),
        ("Invoice Date", "invoice_date", lambda b: ymd(b["date"])),
        ("Invoice Amount", "amount", lambda b: money(b["amount"])),
        ("Item", "service", lambda b: b["service"]),
        ("Due Date", "due_date", lambda b: ymd(b["due"])),
        ("Payment Date", "paid_date", lambda b: ymd(b["paid"])),
    ])
    write_csv(p, bl)
    wk = Table("activity", "timesheets.csv", work, [
        ("Customer ID", "client_id", lambda w: w["c"]["no"]),
        ("Period", "month", lambda w: f"{w['month'].year}-{w['month'].month:02d}"),
        ("Voucher Count", "vouchers", lambda w: w["vouchers"]),
        ("Tax Filings", "filings", lambda w: w["filings"]),
        ("Hours Spent", "hours", lambda w: w["hours"]),
        ("Support Tickets", "tickets", lambda w: w["tickets"]),
        ("Documents Late", "late_documents", lambda w: "yes" if w["late"] else "no"),
    ])
    write_csv(p, wk)
    st = Table("staff", "staff.csv", staff, [
        ("Name", "accountant", lambda s: s[0]),
        ("Level", "grade", lambda s: {"主管": "Manager", "中级": "Senior", "初级": "Junior"}[s[1]]),
        ("Capacity", "capacity_hours", lambda s: s[2]),
        ("Team", "team", lambda s: s[4]),
        ("Status", "active", lambda s: "Active" if s[5] else "Left"),
    ])
    write_csv(p, st)
    ct = Table("contacts", "follow-ups.csv", contacts, [
        ("Customer ID", "client_id", lambda x: x["c"]["no"]),
        ("Contact Date", "date", lambda x: ymd(x["date"])),
        ("Channel", "channel", lambda x: {"电话": "phone", "微信": "WeChat", "上门": "visit"}[x["channel"]]),
        ("Notes", "note", lambda x: "monthly call"),
    ])
    write_csv(p, ct)
    expected(p, [cl, bl, wk, st, ct])


def invoicing(clients, bills, work, staff, contacts):
    """Invoicing-software billing (购方税号, 价税合计, dates with times) beside a ledger of
    clients keyed by their credit codes."""
    p = folder("invoicing_tax_ids")
    cl = Table("clients", "客户台账.xlsx", clients, [
        ("纳税人识别号", "client_id", lambda c: c["uscc"]),
        ("纳税人名称", "name", lambda c: c["name"]),
        ("企业性质", "client_type", lambda c: ZH_TYPE[c["ctype"]]),
        ("增值税纳税人类型", "taxpayer_type", lambda c: "增值税一般纳税人" if c["general"] else "增值税小规模纳税人"),
        ("国标行业", "industry", lambda c: c["industry"]),
        ("省份", "province", lambda c: c["province"]),
        ("城市", "city", lambda c: c["city"]),
        ("代账费", "monthly_fee", lambda c: c["fee"]),
        ("会计", "accountant", lambda c: c["accountant"]),
        ("合同起始日期", "contract_start", lambda c: c["start"]),
        ("合同到期日期", "contract_end", lambda c: c["end"]),
    ])
    wb = openpyxl.Workbook()
    sheet_rows(wb.active, cl)
    wb.save(os.path.join(p, cl.file))
    rng = random.Random(7)
    bl = Table("billing", "开票记录.xlsx", bills, [
        ("发票代码", None, lambda b: "044031900111"),
        ("发票号码", None, lambda b: f"{rng.randrange(10**7, 10**8)}"),
        ("购方名称", None, lambda b: b["c"]["name"]),
        ("购方税号", "client_id", lambda b: b["c"]["uscc"]),
        ("开票日期", "invoice_date", lambda b: dt.datetime(b["date"].year, b["date"].month, b["date"].day, 10, 23, 11)),
        ("货物或应税劳务名称", "service", lambda b: "*现代服务*" + b["service"]),
        ("金额", None, lambda b: round(b["amount"] / 1.06, 2)),
        ("税额", None, lambda b: round(b["amount"] - b["amount"] / 1.06, 2)),
        ("价税合计", "amount", lambda b: b["amount"]),
    ])
    wb = openpyxl.Workbook()
    sheet_rows(wb.active, bl, above=[("发票明细导出",), ("导出时间：2026-01-03 09:00",)])
    wb.save(os.path.join(p, bl.file))
    wk = Table("activity", "账务处理.xlsx", work, [
        ("纳税人识别号", "client_id", lambda w: w["c"]["uscc"]),
        ("所属期", "month", lambda w: f"{w['month'].year}-{w['month'].month:02d}"),
        ("记账凭证数", "vouchers", lambda w: w["vouchers"]),
        ("申报税种数", "filings", lambda w: w["filings"]),
        ("实际工时", "hours", lambda w: w["hours"]),
    ])
    wb = openpyxl.Workbook()
    sheet_rows(wb.active, wk)
    wb.save(os.path.join(p, wk.file))
    expected(p, [cl, bl, wk])


def crm(clients, bills, work, staff, contacts):
    """A CRM beside the bookkeeping software: GBK CSV and xlsx mixed, follow-ups with
    times, staff with 正常/停用."""
    p = folder("crm_followups_mixed")
    cl = Table("clients", "客户资料.xlsx", clients, [
        ("客户ID", "client_id", lambda c: c["no"]),
        ("客户名称", "name", lambda c: c["name"]),
        ("客户类型", "client_type", lambda c: {"enterprise": "企业", "individual_business": "个体工商户", "person": "个人"}[c["ctype"]]),
        ("纳税类型", "taxpayer_type", lambda c: "一般纳税人" if c["general"] else "小规模纳税人"),
        ("行业", "industry", lambda c: c["industry"]),
        ("省", "province", lambda c: c["province"]),
        ("市", "city", lambda c: c["city"]),
        ("月服务费", "monthly_fee", lambda c: c["fee"]),
        ("负责会计", "accountant", lambda c: c["accountant"]),
        ("合作起始时间", "contract_start", lambda c: c["start"]),
        ("合同到期日", "contract_end", lambda c: c["end"]),
    ])
    wb = openpyxl.Workbook()
    sheet_rows(wb.active, cl)
    wb.save(os.path.join(p, cl.file))
    bl = Table("billing", "应收账款.csv", bills, [
        ("客户ID", "client_id", lambda b: b["c"]["no"]),
        ("账单日期", "invoice_date", lambda b: ymd(b["date"])),
        ("应收金额", "amount", lambda b: b["amount"]),
        ("到期日", "due_date", lambda b: ymd(b["due"])),
        ("回款日期", "paid_date", lambda b: ymd(b["paid"])),
    ])
    write_csv(p, bl, encoding="gbk")
    ct = Table("contacts", "跟进记录.xlsx", contacts, [
        ("客户ID", "client_id", lambda x: x["c"]["no"]),
        ("跟进时间", "date", lambda x: dt.datetime(x["date"].year, x["date"].month, x["date"].day, 15, 30)),
        ("跟进方式", "channel", lambda x: x["channel"]),
        ("跟进内容", "note", lambda x: x["note"]),
        ("跟进人", None, lambda x: x["c"]["accountant"]),
    ])
    wb = openpyxl.Workbook()
    sheet_rows(wb.active, ct)
    wb.save(os.path.join(p, ct.file))
    wk = Table("activity", "工时统计.csv", work, [
        ("客户ID", "client_id", lambda w: w["c"]["no"]),
        ("记账期间", "month", lambda w: f"{w['month'].year}-{w['month'].month:02d}"),
        ("凭证数量", "vouchers", lambda w: w["vouchers"]),
        ("工时", "hours", lambda w: w["hours"]),
        ("咨询", "tickets", lambda w: w["tickets"]),
    ])
    write_csv(p, wk, encoding="gbk")
    st = Table("staff", "员工.csv", staff, [
        ("员工姓名", "accountant", lambda s: s[0]),
        ("职位", "grade", lambda s: {"主管": "会计主管", "中级": "会计", "初级": "会计助理"}[s[1]]),
        ("月工时", "capacity_hours", lambda s: s[2]),
        ("部门", "team", lambda s: s[4]),
        ("员工状态", "active", lambda s: "正常" if s[5] else "停用"),
    ])
    write_csv(p, st, encoding="gbk")
    expected(p, [cl, bl, wk, st, ct])


def unicode_text(clients, bills, work, staff, contacts):
    """Excel's "Unicode text" (Unicode 文本): UTF-16 with a byte-order mark, tabs between
    cells, saved as .txt; a units line under the title."""
    p = folder("excel_unicode_text")
    cl = Table("clients", "客户档案.txt", clients, [
        ("客户编号", "client_id", lambda c: c["no"]),
        ("客户名称", "name", lambda c: c["name"]),
        ("纳税人类型", "taxpayer_type", lambda c: "一般纳税人" if c["general"] else "小规模纳税人"),
        ("所属行业", "industry", lambda c: c["industry"]),
        ("月服务费", "monthly_fee", lambda c: f"{c['fee']:,}"),
        ("主办会计", "accountant", lambda c: c["accountant"]),
        ("合同开始日期", "contract_start", lambda c: ymd(c["start"])),
        ("合同结束日期", "contract_end", lambda c: ymd(c["end"])),
    ])
    write_csv(p, cl, encoding="utf-16", delimiter="\t", above=[("客户档案",), ("单位：元",)])
    bl = Table("billing", "收费明细.txt", bills, [
        ("客户编号", "client_id", lambda b: b["c"]["no"]),
        ("开票日期", "invoice_date", lambda b: ymd(b["date"])),
        ("金额", "amount", lambda b: f"{b['amount']:,}"),
        ("收款日期", "paid_date", lambda b: ymd(b["paid"])),
    ])
    write_csv(p, bl, encoding="utf-16", delimiter="\t", below=[("合计", "", f"{sum(b['amount'] for b in bills):,}", "")])
    expected(p, [cl, bl])


def main():
    data = firm()
    for make in (kingdee, chanjet, one_workbook, merged_headers, own_sheets, english, invoicing, crm, unicode_text):
        make(*data)


if __name__ == "__main__":
    main()
