package s3

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The example requests of the Amazon S3 API Reference, "Signature
// Calculations for the Authorization Header: Transferring Payload in a
// Single Chunk (AWS Signature Version 4)": bucket examplebucket in
// us-east-1, 2013-05-24T00:00:00Z, the documentation's example key pair.
// The expected signatures are the ones the documentation prints.
const (
	exampleAccess = "AKIAIOSFODNN7EXAMPLE"
	exampleSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

var exampleTime = time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC)

func TestSignMatchesAWSDocumentationExamples(t *testing.T) {
	putBody := "Welcome to Amazon S3."
	putSum := sha256.Sum256([]byte(putBody))
	for _, tc := range []struct {
		name, method, url string
		header            map[string]string
		payload           string
		signed            string
		sig               string
	}{
		{"GET object with Range", "GET", "https://examplebucket.s3.amazonaws.com/test.txt",
			map[string]string{"Range": "bytes=0-9"}, emptySHA256,
			"host;range;x-amz-content-sha256;x-amz-date",
			"f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"},
		{"PUT object", "PUT", "https://examplebucket.s3.amazonaws.com/test$file.text",
			map[string]string{"Date": "Fri, 24 May 2013 00:00:00 GMT", "X-Amz-Storage-Class": "REDUCED_REDUNDANCY"},
			hex.EncodeToString(putSum[:]),
			"date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
			"98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"},
		{"GET bucket lifecycle", "GET", "https://examplebucket.s3.amazonaws.com/?lifecycle", nil, emptySHA256,
			"host;x-amz-content-sha256;x-amz-date",
			"fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"},
		{"GET bucket list", "GET", "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J", nil, emptySHA256,
			"host;x-amz-content-sha256;x-amz-date",
			"34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			req.Header.Set("User-Agent", "edged") // never signed
			sign(req, tc.payload, "us-east-1", exampleAccess, exampleSecret, "", exampleTime)
			want := "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request," +
				"SignedHeaders=" + tc.signed + ",Signature=" + tc.sig
			if got := req.Header.Get("Authorization"); got != want {
				t.Errorf("Authorization =\n %s\nwant\n %s", got, want)
			}
			if got := req.Header.Get("X-Amz-Date"); got != "20130524T000000Z" {
				t.Errorf("X-Amz-Date = %q", got)
			}
		})
	}
}

func TestSignSessionTokenIsSentAndSigned(t *testing.T) {
	req, _ := http.NewRequest("GET", "https://examplebucket.s3.amazonaws.com/test.txt", nil)
	sign(req, emptySHA256, "us-east-1", exampleAccess, exampleSecret, "TOKEN", exampleTime)
	if req.Header.Get("X-Amz-Security-Token") != "TOKEN" {
		t.Fatalf("no X-Amz-Security-Token header: %v", req.Header)
	}
	if a := req.Header.Get("Authorization"); !strings.Contains(a, "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,") {
		t.Fatalf("Authorization = %s; want the token signed", a)
	}
}

func TestCanonicalEncoding(t *testing.T) {
	for _, tc := range []struct{ in, path, query string }{
		{"a/b c+d$e~f", "a/b%20c%2Bd%24e~f", "a%2Fb%20c%2Bd%24e~f"},
		{"é", "%C3%A9", "%C3%A9"},
	} {
		if got := encode(tc.in, false); got != tc.path {
			t.Errorf("path encode(%q) = %q; want %q", tc.in, got, tc.path)
		}
		if got := encode(tc.in, true); got != tc.query {
			t.Errorf("query encode(%q) = %q; want %q", tc.in, got, tc.query)
		}
	}
	if got := canonicalQuery("prefix=J&max-keys=2&list-type=2&location"); got != "list-type=2&location=&max-keys=2&prefix=J" {
		t.Errorf("canonicalQuery = %q", got)
	}
}

func TestAWSRegionFromEndpoint(t *testing.T) {
	for host, want := range map[string]string{
		"s3.amazonaws.com":                     "",
		"s3.eu-west-1.amazonaws.com":           "eu-west-1",
		"s3-eu-west-1.amazonaws.com":           "eu-west-1",
		"s3.dualstack.us-east-2.amazonaws.com": "us-east-2",
		"s3-external-1.amazonaws.com":          "",
		"s3-accelerate.amazonaws.com":          "",
		"s3.cn-north-1.amazonaws.com.cn":       "cn-north-1",
		"minio.local":                          "",
	} {
		if got := awsRegion(host); got != want {
			t.Errorf("awsRegion(%q) = %q; want %q", host, got, want)
		}
	}
}
