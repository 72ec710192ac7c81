"""The OpenAPI schema speaks the reader's language: /api/schema/?lang=zh-hans describes the
operations, their parameters, fields and error answers in Chinese (drf-spectacular translates
what is marked with gettext_lazy), and the English schema stays English."""
import re

import pytest
from rest_framework.test import APIClient

from tests.test_translations import ENGLISH_RUN, chinese_catalogue  # noqa: F401

CHINESE = re.compile(r"[\u4e00-\u9fff]")

def texts(schema, path=""):
    """(where, text) for every description and summary in the schema."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in ("description", "summary") and isinstance(value, str):
                yield f"{path}/{key}", value
            else:
                yield from texts(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from texts(value, f"{path}[{index}]")


@pytest.fixture
def schema_in(cast, chinese_catalogue):  # noqa: F811
    def fetch(lang: str) -> dict:
        client = APIClient()
        client.force_login(cast["doctor"])
        response = client.get(f"/api/schema/?lang={lang}&format=json")
        assert response.status_code == 200, response.content[:300]
        return response.json()

    return fetch


def test_the_chinese_schema_describes_operations_in_chinese(schema_in):
    paths = schema_in("zh-hans")["paths"]
    described = {
        ("/api/v1/audit/verify/", "post"): "校验整个保管台账",
        ("/api/v1/handovers/", "post"): "转交给同事",
        ("/api/v1/loans/", "post"): "将介质借给借阅人",
        ("/api/v1/loan-requests/{id}/deny/", "post"): "拒绝申请",
        ("/api/v1/media/{code}/chain/", "get"): "保管链",
        ("/api/v1/retention/", "get"): "保留期限",
        ("/api/v1/signatures/", "post"): "补签",
    }
    for (path, method), words in described.items():
        assert words in paths[path][method]["description"], (path, method)
    assert "未登录" in paths["/api/v1/loans/"]["get"]["responses"]["401"]["description"]
    parameters = {p["name"]: p for p in paths["/api/v1/audit/events/"]["get"]["parameters"]}
    assert parameters["from"]["description"] == "起始日期（本地时间，含当天），格式 YYYY-MM-DD。"


def test_no_description_in_the_chinese_schema_is_english(schema_in):
    english = {
        where: text for where, text in texts(schema_in("zh-hans"))
        if ENGLISH_RUN.search(text)
    }
    assert not english, english
    chinese = [text for where, text in texts(schema_in("zh-hans")) if CHINESE.search(text)]
    assert len(chinese) > 100


def test_the_english_schema_stays_english(schema_in):
    paths = schema_in("en")["paths"]
    assert paths["/api/v1/loans/"]["post"]["description"] == (
        "Check an item out to a borrower (file room and admins)."
    )
    assert not any(CHINESE.search(text) for _where, text in texts(schema_in("en")))
