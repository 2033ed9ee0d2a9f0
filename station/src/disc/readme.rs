//! The texts on every disc: the README (说明) with the verification script a court runs
//! with `sha256sum` and `openssl` alone, and the Chinese index page.

use std::fmt::Write as _;

use super::{DiscPlan, ShippedClip};
use maud::{DOCTYPE, Markup, html};

/// The line before the verification script in the README.
pub const SCRIPT_BEGIN: &str = "#----- 核验脚本开始 -----";
/// The line after it.
pub const SCRIPT_END: &str = "#----- 核验脚本结束 -----";

/// The verification script: POSIX sh, coreutils and openssl only (no sed, grep or awk).
/// It checks every file against `SHA256SUMS`, every record's signature, every clip's hash
/// against its record, the checkpoint's signature, and every inclusion proof to it.
const SCRIPT: &str = r#"fail() { echo "核验失败: $*" >&2; exit 1; }
t=$(mktemp -d) || fail "mktemp"
# 1. 每个文件的 SHA-256 与 SHA256SUMS 一致（损坏的文件会被指名）
sha256sum -c --quiet SHA256SUMS || fail "SHA256SUMS"
# 2. 每条设备记录用设备公钥、每条采集站记录用采集站公钥验证签名
for f in records/*/*.json; do
  [ -e "$f" ] || continue
  d=${f%/*}; serial=${d#records/}
  openssl pkeyutl -verify -pubin -inkey "keys/$serial.pub.pem" -rawin -in "$f" \
    -sigfile "${f%.json}.sig" >/dev/null || fail "签名 $f"
done
for f in station-records/*.json; do
  [ -e "$f" ] || continue
  openssl pkeyutl -verify -pubin -inkey keys/station.pub.pem -rawin -in "$f" \
    -sigfile "${f%.json}.sig" >/dev/null || fail "签名 $f"
done
# 3. 每个视音频文件、执法文书的 SHA-256 与其签名记录所载一致
while read -r h file rec; do
  [ "$(sha256sum < "$file" | cut -c1-64)" = "$h" ] || fail "哈希 $file"
  case "$(cat "$rec")" in *"\"sha256\": \"$h\""*) ;; *) fail "记录 $rec 未载明 $file 的哈希" ;; esac
done < FILES.txt
# 4. 检查点（checkpoint.txt）由采集站密钥签名
while IFS= read -r line; do [ -z "$line" ] && break; printf '%s\n' "$line"; done \
  < checkpoint.txt > "$t/body"
{ read -r origin; read -r size; read -r root64; } < checkpoint.txt
while read -r dash name sig; do
  [ "$dash" = "—" ] && [ "$name" = "$origin" ] && printf '%s' "$sig" | base64 -d | tail -c 64 > "$t/sig"
done < checkpoint.txt
[ -s "$t/sig" ] || fail "检查点没有采集站签名"
openssl pkeyutl -verify -pubin -inkey keys/station.pub.pem -rawin -in "$t/body" \
  -sigfile "$t/sig" >/dev/null || fail "检查点签名"
root=$(printf '%s' "$root64" | base64 -d | od -An -tx1 -v | tr -d ' \n')
# 5. 每条记录都在日志中：包含证明（RFC 9162）通向检查点的根
node() { printf '01%s%s' "$1" "$2" | tr a-f A-F | basenc --base16 -d | sha256sum | cut -c1-64; }
for p in proofs/*.txt; do
  [ -e "$p" ] || continue
  leaf=; i=; n=; hashes=
  while read -r k v; do
    case $k in leaf) leaf=$v ;; index) i=$v ;; size) n=$v ;; hash) hashes="$hashes $v" ;; esac
  done < "$p"
  [ "$n" = "$size" ] || fail "$p 不是到此检查点的证明"
  r=$( { printf '\000'; cat "$leaf"; } | sha256sum | cut -c1-64)
  fn=$i; sn=$((n - 1))
  for h in $hashes; do
    [ "$sn" -gt 0 ] || fail "$p 过长"
    if [ $((fn % 2)) -eq 1 ] || [ "$fn" -eq "$sn" ]; then
      r=$(node "$h" "$r")
      if [ $((fn % 2)) -eq 0 ]; then
        while [ $((fn % 2)) -eq 0 ] && [ "$fn" -ne 0 ]; do fn=$((fn / 2)); sn=$((sn / 2)); done
      fi
    else
      r=$(node "$r" "$h")
    fi
    fn=$((fn / 2)); sn=$((sn / 2))
  done
  [ "$sn" -eq 0 ] && [ "$r" = "$root" ] || fail "包含证明 $p"
done
rm -rf "$t"
echo "全部核验通过"
"#;

/// The title line of a disc or package: which case, which disc, or which request.
fn title(plan: &DiscPlan) -> String {
    match &plan.package {
        None => format!(
            "案件 {} 视音频资料光盘 第 {} 张，共 {} 张（卷标 {}）",
            plan.case_number, plan.disc, plan.of, plan.volume_id
        ),
        Some(p) => format!(
            "视音频资料导出包 {}：第 {} 号申请（{}），事由：{}，去向：{}{}",
            plan.volume_id,
            p.request,
            p.form.name_zh(),
            p.purpose,
            p.destination,
            if p.outside { "（对外提供）" } else { "" }
        ),
    }
}

/// The README (说明) of one disc or export package.
pub fn readme(plan: &DiscPlan, origin: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "说明 — {}\n", title(plan));
    if let Some(p) = &plan.package {
        let _ = writeln!(
            s,
            "申请人：{}；批准人：{}。申请、每项审批和本次导出各是采集站签名的一条记录\n\
             （station-records/），均在透明日志中（proofs/）；批准记录载明准予导出的每条记录的\n\
             哈希、有效期，且只能使用一次。\n",
            p.requester,
            p.approvers.join("；")
        );
    }
    let noun = plan.noun();
    let what = if plan.package.is_some() {
        "经批准导出的视音频资料"
    } else {
        "本案视音频资料"
    };
    let _ = writeln!(
        s,
        "本{noun}由执法记录仪采集站 {origin} 制作，含{what} {} 个、执法文书 {} 份，\n\
         以及核验所需的全部材料：每个文件的签名记录（records/、station-records/），设备与\n\
         采集站公钥（keys/），透明日志检查点（checkpoint.txt）及每条记录的包含证明\n\
         （proofs/），全部文件的 SHA-256（SHA256SUMS）。index.html 列出本{noun}内容。\n\
         本{noun}自成一体：核验无需其他光盘，也无需联网或采集站。\n",
        plan.clips.len(),
        plan.documents.len()
    );
    s.push_str(
        "核验方法（只需 sha256sum 等 coreutils 命令与 openssl）：在根目录下，将下面两条\n\
         标记之间的命令粘贴到 sh 中执行。全部通过时最后一行打印“全部核验通过”；任何一项\n\
         不符时打印“核验失败”及出错的文件，并以非零状态退出。\n\n",
    );
    let _ = writeln!(s, "{SCRIPT_BEGIN}\n{SCRIPT}{SCRIPT_END}\n");
    s.push_str(
        "各步骤的含义：\n\
         1. sha256sum -c SHA256SUMS：每个文件未被改动。\n\
         2. openssl pkeyutl -verify：每条记录由其设备（或采集站）的 Ed25519 私钥签名，\n\
         \x20  签名覆盖记录文件的全部字节。\n\
         3. FILES.txt：每个视音频文件、文书的 SHA-256 与签名记录所载一致。\n\
         4. checkpoint.txt：采集站对其透明日志在某一大小时的根哈希的签名。\n\
         5. proofs/：每条记录是该日志的一个叶子（RFC 9162 包含证明），日志只能追加，\n\
         \x20  采集站事后无法在不被发现的情况下删改记录。\n\n\
         也可用 Custody 的核验工具：custody verify 目录（可加 --key 指定可信的采集站与\n\
         设备公钥；导出包另核对申请、审批与导出记录是否相符）；采集站核验光盘：\n\
         custody-station disc verify 光盘或镜像，另与台账核对内容。\n",
    );
    s
}

/// The Chinese index page of one disc.
pub fn index_html(plan: &DiscPlan) -> String {
    let title = title(plan);
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                title { (title) }
                style {
                    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
                    "td,th{border:1px solid #999;padding:4px 8px;vertical-align:top}"
                    "th{background:#eee;white-space:nowrap}"
                }
            }
            body {
                h1 { (plan.case_number) " 视音频资料" }
                p { (title) "。核验方法见 README-说明.txt。" }
                h2 { "视音频资料" }
                table {
                    tr {
                        th { "编号" } th { "录制时间（时钟、误差）" } th { "地点" } th { "执法人员" }
                        th { "证明对象" } th { "对话人员" } th { "主要内容" } th { "设备" } th { "文件" }
                    }
                    @for c in &plan.clips { (clip_row(c)) }
                }
                h2 { "执法文书" }
                table {
                    tr { th { "标题" } th { "文件" } th { "大小（字节）" } th { "归入人" } }
                    @for d in &plan.documents {
                        tr {
                            td { (d.title) }
                            td { a href=(d.disc_path) { (d.disc_path) } }
                            td { (d.size) }
                            td { (d.attached_by) }
                        }
                    }
                }
            }
        }
    }
    .into_string()
}

fn clip_row(c: &ShippedClip) -> Markup {
    let speakers: Vec<String> = c
        .row
        .speakers
        .iter()
        .map(|p| format!("{}（{}）", p.name, p.identity))
        .collect();
    html! {
        tr {
            td { (c.row.number) }
            td { (c.row.time_zh()) }
            td { (c.row.place_zh()) }
            td { (c.row.officer_zh()) }
            td { (c.row.proves.as_deref().unwrap_or("")) }
            td { (speakers.join("、")) }
            td { (c.row.summary.as_deref().unwrap_or("")) }
            td { (c.row.serial) }
            td { a href=(c.disc_path) { (c.disc_path) } }
        }
    }
}
