#!/usr/bin/env bash
# pulumi-vllm host step library: the login to a private package index (the
# stack's secret indexCredentials), for the steps that download packages
# (uv-venv, vllm-install). Included like lib/txn.sh (see there). Needs from
# the step: die(), and lib/redact.sh.
#
# The login comes on stdin only, as an `INDEX_CREDENTIALS=<user>:<password>`
# line: never a PV_* parameter (the command is kept in the Pulumi state in
# clear and is the argv of `env` and `bash` on the host). No value derived
# from it is ever passed as an argument to a program: only bash builtins
# touch it, and the downloaders get it in their environment.

# Reads stdin. Sets INDEX_USER and INDEX_PASSWORD ("" without a login) and
# SECRET_VALUES (lib/redact.sh): every form the login may take in a tool's
# output (the password, user:password, percent-encoded, the Basic header).
index_login_read() {
  local line login=""
  if [[ ! -t 0 ]]; then
    while IFS= read -r line || [[ -n $line ]]; do
      case $line in
        '') ;;
        INDEX_CREDENTIALS=*) login=${line#INDEX_CREDENTIALS=} ;;
        *=*) ;; # not this step's
        *) die "stdin: a line is not NAME=value (line not shown: it may hold a secret)" ;;
      esac
    done
  fi
  INDEX_USER=""
  INDEX_PASSWORD=""
  # shellcheck disable=SC2034 # read by redact (lib/redact.sh)
  SECRET_VALUES=()
  [[ -n $login ]] || return 0
  local fix="-> set it again: pulumi config set --secret indexCredentials '<user>:<password>'"
  [[ $login != *[[:space:][:cntrl:]]* ]] || die "stdin: INDEX_CREDENTIALS holds whitespace or a control character (value not shown) $fix"
  [[ $login == ?*:?* ]] || die "stdin: INDEX_CREDENTIALS is not <user>:<password> (value not shown) $fix"
  INDEX_USER=${login%%:*}
  INDEX_PASSWORD=${login#*:}
  local basic
  basic=$(printf '%s' "$login" | base64 -w0)
  # shellcheck disable=SC2034 # read by redact (lib/redact.sh)
  SECRET_VALUES=("$login" "$INDEX_PASSWORD" "$(index_urlencode "$INDEX_PASSWORD")" "$basic"
    "$(index_urlencode "$INDEX_USER"):$(index_urlencode "$INDEX_PASSWORD")")
}

# Percent-encodes $1 for the userinfo of a URL (bash only: the value is never
# an argument of another program).
index_urlencode() {
  local s=$1 out="" c i LC_ALL=C
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      [A-Za-z0-9._~-]) out+=$c ;;
      *) printf -v c '%%%02X' "'$c"; out+=$c ;;
    esac
  done
  printf '%s' "$out"
}

# $1 (an index URL) with the login in it, scheme://user:password@host/...:
# for a downloader's environment (UV_INDEX_URL), never its argv. $1 as it is
# without a login.
index_url_with_login() {
  local url=$1
  if [[ -z $INDEX_USER ]]; then printf '%s' "$url"; return 0; fi
  printf '%s://%s:%s@%s' "${url%%://*}" "$(index_urlencode "$INDEX_USER")" "$(index_urlencode "$INDEX_PASSWORD")" "${url#*://}"
}

# The fix for a download the index refused (HTTP 401/403 in the output file
# $1), or "" when it did not answer so.
index_refusal() {
  local code
  code=$(grep -oE '\b(401|403)\b' -- "$1" | head -n 1 || true)
  [[ -n $code ]] || return 0
  if [[ -n $INDEX_USER ]]; then
    printf 'the index refused the login of indexCredentials (HTTP %s) -> check the user and the token, and that they may read this index: pulumi config set --secret indexCredentials '"'"'<user>:<password>'"'" "$code"
  else
    printf 'the index needs a login (HTTP %s) -> pulumi config set --secret indexCredentials '"'"'<user>:<password>'"'" "$code"
  fi
}
