"""Touchpoint classification, rule by rule: click ids, then UTM, then the referrer host, else direct."""

from __future__ import annotations

import pytest

from projections.touchpoints.classify import (
    AD_HIERARCHY_PARAMS,
    CLICK_ID_RULES,
    REFERRER_RULES,
    SOURCES,
    UTM_SOURCE_DIRECT_RULES,
    classify,
    source_of_utm,
)

LANDING = "https://shop.example.com/pricing"


def test_every_rule_names_a_source_of_the_reference_list():
    named = [s for _, s in CLICK_ID_RULES] + [s for _, s in REFERRER_RULES]
    named += [s for _, s in UTM_SOURCE_DIRECT_RULES]
    assert set(named) <= set(SOURCES)
    assert len(SOURCES) == len(set(SOURCES)) == 52


@pytest.mark.parametrize(("param", "source"), CLICK_ID_RULES)
def test_click_id_rule(param, source):
    assert classify(f"{LANDING}?{param}=abc123", None).source == source


def test_click_id_beats_utm_and_referrer():
    url = f"{LANDING}?gclid=x&utm_source=facebook&utm_medium=cpc"
    assert classify(url, "https://www.bing.com/").source == "google_ads"


def test_first_listed_click_id_wins_when_two_are_present():
    assert classify(f"{LANDING}?fbclid=1&gclid=2", None).source == "google_ads"


@pytest.mark.parametrize(
    ("host", "source"),
    [(rule + "com" if rule.endswith(".") else rule, source) for rule, source in REFERRER_RULES],
)
def test_referrer_rule(host, source):
    assert classify(LANDING, f"https://{host}/some/path").source == source


@pytest.mark.parametrize(
    ("referrer", "source"),
    [
        ("https://www.google.co.uk/", "google_organic"),
        ("https://news.google.de/x", "google_organic"),
        ("https://gemini.google.com/app", "ai_gemini"),
        ("https://mail.google.com/mail/u/0", "email"),
        ("https://m.facebook.com/", "facebook_organic"),
        ("https://l.instagram.com/", "instagram_organic"),
        ("https://uk.search.yahoo.com/", "yahoo_organic"),
        ("https://www.youtube.com/watch?v=1", "youtube_organic"),
        ("https://blog.partner.io/post", "referral"),
        ("https://googleblog.example.org/", "referral"),
    ],
)
def test_referrer_host_examples(referrer, source):
    assert classify(LANDING, referrer).source == source


def test_no_referrer_and_no_parameters_is_direct():
    assert classify(LANDING, None).source == "direct"
    assert classify(None, None).source == "direct"
    assert classify(LANDING, "").source == "direct"


def test_referrer_on_the_same_site_is_direct():
    assert classify(LANDING, "https://shop.example.com/").source == "direct"
    assert classify(LANDING, "https://www.shop.example.com/cart").source == "direct"


@pytest.mark.parametrize(("names", "source"), UTM_SOURCE_DIRECT_RULES)
def test_utm_source_naming_a_source(names, source):
    for name in names:
        assert source_of_utm(name, None) == source


@pytest.mark.parametrize(
    ("utm_source", "utm_medium", "source"),
    [
        ("facebook", "cpc", "facebook_ads"),
        ("fb", "paid_social", "facebook_ads"),
        ("facebook", "social", "facebook_organic"),
        ("google", "cpc", "google_ads"),
        ("google", "organic", "google_organic"),
        ("Instagram", "paidsocial", "instagram_ads"),
        ("linkedin", "cpc", "linkedin_ads"),
        ("tiktok", "ppc", "tiktok_ads"),
        ("youtube", "cpv", "youtube_ads"),
        ("bing", "cpc", "bing_ads"),
        ("twitter", "cpc", "x_ads"),
        ("reddit", "paid", "reddit_ads"),
        ("messenger", "cpc", "messenger_organic"),  # no messenger_ads in the vocabulary
        ("threads", "social", "threads_organic"),
        ("anything", "email", "email"),
        ("anything", "sms", "sms"),
        ("chatgpt.com", None, "ai_chat_gpt"),
        ("perplexity", "referral", "ai_perplexity"),
        ("g2", "review", "g2"),
        ("unknown-partner", "affiliate", None),
    ],
)
def test_utm_source_and_medium(utm_source, utm_medium, source):
    assert source_of_utm(utm_source, utm_medium) == source


def test_utm_in_the_landing_url_beats_the_referrer():
    url = f"{LANDING}?utm_source=chatgpt.com"
    assert classify(url, "https://www.google.com/").source == "ai_chat_gpt"


def test_unknown_utm_source_is_referral():
    assert classify(f"{LANDING}?utm_source=partner&utm_medium=affiliate", None).source == "referral"


def test_segment_campaign_context_counts_as_utm():
    assert classify(LANDING, None, {"source": "facebook", "medium": "cpc"}).source == "facebook_ads"


@pytest.mark.parametrize(("field", "params"), AD_HIERARCHY_PARAMS)
def test_ad_hierarchy_parameter(field, params):
    for p in params:
        got = classify(f"{LANDING}?gclid=1&{p}=v-{p}", None)
        assert getattr(got, field) == f"v-{p}", p


def test_ad_hierarchy_first_listed_parameter_wins():
    got = classify(f"{LANDING}?fbclid=1&utm_campaign=Spring&campaign_name=Spring%20Sale&utm_content=A", None)
    assert got.campaign_name == "Spring Sale"
    assert got.ad_name == "A"
    assert got.source == "facebook_ads"


def test_ad_hierarchy_from_segment_campaign_context():
    got = classify(LANDING, None, {"source": "google", "medium": "cpc", "name": "brand", "content": "ad7"})
    assert (got.source, got.campaign_name, got.ad_name) == ("google_ads", "brand", "ad7")
