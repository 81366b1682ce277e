package s3

import (
	"bytes"
	"strconv"
	"strings"
)

// The S3 answers this client reads (Error, ListBucketResult,
// LocationConstraint) are flat, attribute-free XML documents. They are read
// with these few functions instead of encoding/xml, which would add ~100 KB
// to a gateway's binary for the same result.

// elems returns the raw contents of every <tag>...</tag> in doc, in order
// (the open tag may carry attributes, such as xmlns). An element of that
// name must not contain another one (true of the S3 elements read here).
// A self-closing <tag/> is not returned.
func elems(doc []byte, tag string) [][]byte {
	open, end := []byte("<"+tag), []byte("</"+tag+">")
	var out [][]byte
	for {
		i := bytes.Index(doc, open)
		if i < 0 {
			return out
		}
		doc = doc[i+len(open):]
		if len(doc) == 0 {
			return out
		}
		if c := doc[0]; c != '>' && c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '/' {
			continue // a longer name (<KeyCount> for <Key>)
		}
		gt := bytes.IndexByte(doc, '>')
		if gt < 0 {
			return out
		}
		selfClosing := gt > 0 && doc[gt-1] == '/'
		doc = doc[gt+1:]
		if selfClosing {
			continue
		}
		j := bytes.Index(doc, end)
		if j < 0 {
			return out
		}
		out = append(out, doc[:j])
		doc = doc[j+len(end):]
	}
}

// elem returns the text of the first <tag> in doc, "" when absent.
func elem(doc []byte, tag string) string {
	e := elems(doc, tag)
	if len(e) == 0 {
		return ""
	}
	return text(e[0])
}

// text decodes character data: the five predefined entities, numeric
// character references and CDATA sections.
func text(b []byte) string {
	s := string(b)
	if !strings.ContainsAny(s, "&<") {
		return s
	}
	var out strings.Builder
	for len(s) > 0 {
		switch {
		case strings.HasPrefix(s, "<![CDATA["):
			s = s[len("<![CDATA["):]
			i := strings.Index(s, "]]>")
			if i < 0 {
				i = len(s)
				out.WriteString(s)
				s = ""
				continue
			}
			out.WriteString(s[:i])
			s = s[i+3:]
		case s[0] == '&':
			i := strings.IndexByte(s, ';')
			if i < 0 {
				out.WriteString(s)
				s = ""
				continue
			}
			if r, ok := entity(s[1:i]); ok {
				out.WriteString(r)
			} else {
				out.WriteString(s[:i+1])
			}
			s = s[i+1:]
		default:
			out.WriteByte(s[0])
			s = s[1:]
		}
	}
	return out.String()
}

func entity(name string) (string, bool) {
	switch name {
	case "amp":
		return "&", true
	case "lt":
		return "<", true
	case "gt":
		return ">", true
	case "quot":
		return `"`, true
	case "apos":
		return "'", true
	}
	if strings.HasPrefix(name, "#") {
		base, digits := 10, name[1:]
		if strings.HasPrefix(digits, "x") || strings.HasPrefix(digits, "X") {
			base, digits = 16, digits[1:]
		}
		if n, err := strconv.ParseUint(digits, base, 32); err == nil {
			return string(rune(n)), true
		}
	}
	return "", false
}
