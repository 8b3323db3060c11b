"""A minimal S3 client for the tests (SigV4 over `requests`): enough to list, read and
write the objects of a test bucket behind ogd's back, without boto3."""
import datetime
import hashlib
import html
import hmac
import re
import urllib.parse

import requests


class S3:
    def __init__(self, endpoint, access_key, secret_key, bucket, region="us-east-1"):
        self.endpoint = endpoint.rstrip("/")
        self.ak, self.sk, self.bucket, self.region = access_key, secret_key, bucket, region

    def _request(self, method, key="", query=None, body=b""):
        path = "/" + self.bucket + ("/" + urllib.parse.quote(key, safe="/~") if key else "")
        q = sorted((query or {}).items())
        qs = "&".join(urllib.parse.quote(k, safe="~") + "=" + urllib.parse.quote(v, safe="~")
                      for k, v in q)
        now = datetime.datetime.now(datetime.timezone.utc)
        amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        host = urllib.parse.urlsplit(self.endpoint).netloc
        payload = hashlib.sha256(body).hexdigest()
        headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
        signed = ";".join(sorted(headers))
        canonical = "\n".join([method, path, qs] +
                              [k + ":" + headers[k] for k in sorted(headers)] +
                              ["", signed, payload])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        k = ("AWS4" + self.sk).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.ak}/{scope}, "
                                    f"SignedHeaders={signed}, Signature={sig}")
        del headers["host"]
        url = self.endpoint + path + ("?" + qs if qs else "")
        return requests.request(method, url, headers=headers, data=body, timeout=30)

    def put(self, key, body):
        r = self._request("PUT", key, body=body)
        assert r.status_code == 200, r.text

    def get(self, key):
        return self._request("GET", key)

    def keys(self, prefix=""):
        out, token = [], None
        while True:
            q = {"list-type": "2", "prefix": prefix}
            if token:
                q["continuation-token"] = token
            r = self._request("GET", query=q)
            assert r.status_code == 200, r.text
            out += [html.unescape(k) for k in re.findall(r"<Key>(.*?)</Key>", r.text)]
            m = re.search(r"<NextContinuationToken>(.*?)</NextContinuationToken>", r.text)
            if "<IsTruncated>true</IsTruncated>" not in r.text or not m:
                return sorted(out)
            token = m.group(1)

    def delete(self, key):
        """DELETE of one object (204 also when it is missing)."""
        return self._request("DELETE", key)

    def delete_bucket(self):
        """DELETE of the (empty) bucket."""
        return self._request("DELETE")
