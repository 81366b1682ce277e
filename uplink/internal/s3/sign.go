package s3

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sort"
	"strings"
	"time"
)

// emptySHA256 is the hex SHA-256 of an empty payload.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// amzDate is the ISO 8601 basic format of X-Amz-Date.
const amzDate = "20060102T150405Z"

// unsigned headers: added or rewritten by the transport or proxies, so
// signing them would break the signature on the way.
var unsigned = map[string]bool{
	"authorization":   true,
	"content-length":  true,
	"user-agent":      true,
	"accept-encoding": true,
	"expect":          true,
	"connection":      true,
}

// sign adds the AWS Signature Version 4 headers (X-Amz-Date,
// X-Amz-Content-Sha256, X-Amz-Security-Token when token is set, and
// Authorization) to req for the S3 service in region. payload is the hex
// SHA-256 of the body. Every header already on req (and Host) is signed
// except those in unsigned.
func sign(req *http.Request, payload, region, access, secret, token string, now time.Time) {
	now = now.UTC()
	date := now.Format(amzDate)
	req.Header.Set("X-Amz-Date", date)
	req.Header.Set("X-Amz-Content-Sha256", payload)
	if token != "" {
		req.Header.Set("X-Amz-Security-Token", token)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	names := []string{"host"}
	vals := map[string]string{"host": host}
	for k, v := range req.Header {
		lk := strings.ToLower(k)
		if unsigned[lk] {
			continue
		}
		tv := make([]string, len(v))
		for i, s := range v {
			tv[i] = strings.Join(strings.Fields(s), " ")
		}
		if _, dup := vals[lk]; !dup {
			names = append(names, lk)
		}
		vals[lk] = strings.Join(tv, ",")
	}
	sort.Strings(names)
	var cr strings.Builder
	cr.WriteString(req.Method + "\n")
	cr.WriteString(canonicalPath(req.URL.EscapedPath()) + "\n")
	cr.WriteString(canonicalQuery(req.URL.RawQuery) + "\n")
	for _, n := range names {
		cr.WriteString(n + ":" + vals[n] + "\n")
	}
	signed := strings.Join(names, ";")
	cr.WriteString("\n" + signed + "\n" + payload)

	scope := date[:8] + "/" + region + "/s3/aws4_request"
	crHash := sha256.Sum256([]byte(cr.String()))
	toSign := "AWS4-HMAC-SHA256\n" + date + "\n" + scope + "\n" + hex.EncodeToString(crHash[:])
	k := hmacSHA256([]byte("AWS4"+secret), date[:8])
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, "s3")
	k = hmacSHA256(k, "aws4_request")
	sig := hex.EncodeToString(hmacSHA256(k, toSign))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+access+"/"+scope+
		",SignedHeaders="+signed+",Signature="+sig)
}

func hmacSHA256(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// canonicalPath re-encodes an escaped path the way SigV4 wants it: every
// byte except the unreserved characters and '/' percent-encoded once
// (S3 does not double-encode).
func canonicalPath(escaped string) string {
	if escaped == "" {
		return "/"
	}
	return encode(unescape(escaped), false)
}

// canonicalQuery sorts the parameters by name then value, each encoded
// with encode.
func canonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		k, v, _ := strings.Cut(p, "=")
		parts[i] = encode(unescape(k), true) + "=" + encode(unescape(v), true)
	}
	sort.Strings(parts)
	return strings.Join(parts, "&")
}

// encode percent-encodes every byte of s except A-Z a-z 0-9 - _ . ~, and
// '/' unless slash is true (uppercase hex, as SigV4 requires).
func encode(s string, slash bool) string {
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~' || c == '/' && !slash {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexd[c>>4])
		b.WriteByte(hexd[c&15])
	}
	return b.String()
}

// unescape decodes %XX sequences (a malformed one is kept as is). '+' is
// kept: in S3 paths and in the queries this client builds it is a plus.
func unescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
