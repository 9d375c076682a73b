"""Touchpoint classification: which marketing source brought a visit, and its ad hierarchy.

One ordered rule table per signal — click ids, then UTM source/medium, then the referrer host — maps a
session's entry (landing URL, referrer, campaign) to a source of the attribution API's list. Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

import msgspec

# ---------------------------------------------------------------- the source vocabulary (reference list)

PAID_SOURCES = (
    "facebook_ads", "google_ads", "linkedin_ads", "tiktok_ads", "youtube_ads", "instagram_ads", "bing_ads",
    "yahoo_ads", "pinterest_ads", "reddit_ads", "snapchat_ads", "telegram_ads", "twitch_ads", "x_ads",
    "quora_ads", "duckduckgo_ads",
)  # fmt: skip
ORGANIC_SOURCES = (
    "facebook_organic", "google_organic", "linkedin_organic", "tiktok_organic", "youtube_organic",
    "instagram_organic", "bing_organic", "yahoo_organic", "pinterest_organic", "reddit_organic",
    "snapchat_organic", "telegram_organic", "twitch_organic", "x_organic", "quora_organic",
    "duckduckgo_organic", "messenger_organic", "brave_organic", "threads_organic",
)  # fmt: skip
AI_SOURCES = (
    "ai_chat_gpt", "ai_perplexity", "ai_copilot", "ai_claude", "ai_grok", "ai_gemini", "ai_deepseek",
)  # fmt: skip
OTHER_SOURCES = (
    "email", "sms", "referral", "direct", "shop_app", "substack", "capterra", "trustpilot", "g2", "yelp",
)  # fmt: skip
SOURCES = PAID_SOURCES + ORGANIC_SOURCES + AI_SOURCES + OTHER_SOURCES
DIRECT = "direct"

# ---------------------------------------------------------------- rule 1: click ids in the landing URL
# First match wins, in this order (a URL carrying two click ids is credited to the first listed here).

CLICK_ID_RULES: tuple[tuple[str, str], ...] = (
    ("gclid", "google_ads"),
    ("gbraid", "google_ads"),
    ("wbraid", "google_ads"),
    ("dclid", "google_ads"),
    ("fbclid", "facebook_ads"),
    ("msclkid", "bing_ads"),
    ("ttclid", "tiktok_ads"),
    ("li_fat_id", "linkedin_ads"),
    ("twclid", "x_ads"),
    ("ScCid", "snapchat_ads"),
    ("sccid", "snapchat_ads"),
    ("rdt_cid", "reddit_ads"),
    ("epik", "pinterest_ads"),
    ("qclid", "quora_ads"),
    ("yclid", "yahoo_ads"),
)

# ---------------------------------------------------------------- rule 2: utm_source / utm_medium
# utm_source values (lower-cased) → platform; the medium decides paid vs organic.

UTM_SOURCE_PLATFORMS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("facebook", "fb", "meta", "facebook.com", "m.facebook.com", "l.facebook.com"), "facebook"),
    (("instagram", "ig", "instagram.com"), "instagram"),
    (("google", "google.com", "adwords", "googleads"), "google"),
    (("youtube", "youtube.com", "yt"), "youtube"),
    (("linkedin", "linkedin.com", "lnkd.in"), "linkedin"),
    (("tiktok", "tiktok.com"), "tiktok"),
    (("bing", "bing.com", "microsoft", "microsoftads"), "bing"),
    (("yahoo", "yahoo.com"), "yahoo"),
    (("pinterest", "pinterest.com"), "pinterest"),
    (("reddit", "reddit.com"), "reddit"),
    (("snapchat", "snap", "snapchat.com"), "snapchat"),
    (("telegram", "t.me"), "telegram"),
    (("twitch", "twitch.tv"), "twitch"),
    (("x", "twitter", "x.com", "twitter.com", "t.co"), "x"),
    (("quora", "quora.com"), "quora"),
    (("duckduckgo", "duckduckgo.com"), "duckduckgo"),
    (("messenger", "messenger.com"), "messenger"),
    (("brave", "search.brave.com"), "brave"),
    (("threads", "threads.net", "threads.com"), "threads"),
)
# Platforms with no `_ads` source in the vocabulary fall back to their organic source even when paid.
UTM_PAID_MEDIUMS = frozenset(
    {"cpc", "ppc", "paid", "paidsocial", "paid_social", "paid-social", "cpm", "cpv", "display", "ads",
     "paidsearch", "paid_search", "paid-search", "sem", "banner", "retargeting"}
)  # fmt: skip
UTM_EMAIL_MEDIUMS = frozenset({"email", "e-mail", "newsletter", "e_mail"})
UTM_SMS_MEDIUMS = frozenset({"sms", "text", "mms"})
# utm_source values that name a non-platform source directly.
UTM_SOURCE_DIRECT_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("chatgpt.com", "chatgpt", "chat.openai.com", "openai"), "ai_chat_gpt"),
    (("perplexity", "perplexity.ai", "www.perplexity.ai"), "ai_perplexity"),
    (("copilot", "copilot.microsoft.com", "bing copilot"), "ai_copilot"),
    (("claude", "claude.ai", "anthropic"), "ai_claude"),
    (("grok", "grok.com", "x.ai"), "ai_grok"),
    (("gemini", "gemini.google.com", "bard"), "ai_gemini"),
    (("deepseek", "chat.deepseek.com", "deepseek.com"), "ai_deepseek"),
    (("email", "newsletter", "mailchimp", "klaviyo", "sendgrid", "hubspot_email"), "email"),
    (("sms", "twilio", "attentive", "postscript"), "sms"),
    (("shop_app", "shop.app", "shop"), "shop_app"),
    (("substack", "substack.com"), "substack"),
    (("capterra", "capterra.com"), "capterra"),
    (("trustpilot", "trustpilot.com"), "trustpilot"),
    (("g2", "g2.com", "g2crowd"), "g2"),
    (("yelp", "yelp.com"), "yelp"),
)

# ---------------------------------------------------------------- rule 3: referrer host
# (host suffix, source): a host matches when it equals the suffix or ends with "." + suffix. A suffix
# ending in "." matches any top-level domain (google. → google.com, google.co.uk). First match wins,
# so the specific hosts (gemini.google.com, mail.google.com) come before their parents.

REFERRER_RULES: tuple[tuple[str, str], ...] = (
    ("chatgpt.com", "ai_chat_gpt"),
    ("chat.openai.com", "ai_chat_gpt"),
    ("perplexity.ai", "ai_perplexity"),
    ("copilot.microsoft.com", "ai_copilot"),
    ("claude.ai", "ai_claude"),
    ("grok.com", "ai_grok"),
    ("gemini.google.com", "ai_gemini"),
    ("bard.google.com", "ai_gemini"),
    ("chat.deepseek.com", "ai_deepseek"),
    ("mail.google.com", "email"),
    ("outlook.live.com", "email"),
    ("outlook.office.com", "email"),
    ("mail.yahoo.com", "email"),
    ("googleadservices.com", "google_ads"),
    ("doubleclick.net", "google_ads"),
    ("youtube.com", "youtube_organic"),
    ("youtu.be", "youtube_organic"),
    ("google.", "google_organic"),
    ("bing.com", "bing_organic"),
    ("search.yahoo.com", "yahoo_organic"),
    ("yahoo.", "yahoo_organic"),
    ("duckduckgo.com", "duckduckgo_organic"),
    ("search.brave.com", "brave_organic"),
    ("messenger.com", "messenger_organic"),
    ("facebook.com", "facebook_organic"),
    ("fb.com", "facebook_organic"),
    ("fb.me", "facebook_organic"),
    ("instagram.com", "instagram_organic"),
    ("threads.net", "threads_organic"),
    ("threads.com", "threads_organic"),
    ("linkedin.com", "linkedin_organic"),
    ("lnkd.in", "linkedin_organic"),
    ("tiktok.com", "tiktok_organic"),
    ("pinterest.", "pinterest_organic"),
    ("pin.it", "pinterest_organic"),
    ("reddit.com", "reddit_organic"),
    ("snapchat.com", "snapchat_organic"),
    ("t.me", "telegram_organic"),
    ("telegram.org", "telegram_organic"),
    ("twitch.tv", "twitch_organic"),
    ("x.com", "x_organic"),
    ("twitter.com", "x_organic"),
    ("t.co", "x_organic"),
    ("quora.com", "quora_organic"),
    ("shop.app", "shop_app"),
    ("substack.com", "substack"),
    ("capterra.com", "capterra"),
    ("trustpilot.com", "trustpilot"),
    ("g2.com", "g2"),
    ("yelp.", "yelp"),
)

# ---------------------------------------------------------------- ad hierarchy parameters
# field → query / campaign parameters, first present wins (Meta/Google URL templates, HubSpot `hsa_*`).

AD_HIERARCHY_PARAMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("account_id", ("account_id", "utm_account_id", "hsa_acc")),
    ("account_name", ("account_name", "utm_account", "utm_account_name")),
    ("campaign_id", ("campaign_id", "utm_campaign_id", "utm_id", "gad_campaignid", "campaignid", "hsa_cam")),
    ("campaign_name", ("campaign_name", "utm_campaign")),
    ("adset_id", ("adset_id", "utm_adset_id", "adgroupid", "ad_group_id", "hsa_grp")),
    ("adset_name", ("adset_name", "utm_adset", "ad_group_name", "utm_term")),
    ("ad_id", ("ad_id", "utm_ad_id", "creative", "hsa_ad")),
    ("ad_name", ("ad_name", "utm_ad", "utm_content")),
)
AD_FIELDS = tuple(name for name, _ in AD_HIERARCHY_PARAMS)
# Segment's context.campaign uses short names for the UTM parameters.
_CAMPAIGN_ALIASES = {"source": "utm_source", "medium": "utm_medium", "name": "utm_campaign",
                     "term": "utm_term", "content": "utm_content", "id": "utm_id"}  # fmt: skip


class Classified(msgspec.Struct, omit_defaults=True, frozen=True):
    """A touchpoint's source and the ad hierarchy fields found on its landing URL."""

    source: str
    account_id: str | None = None
    account_name: str | None = None
    campaign_id: str | None = None
    campaign_name: str | None = None
    adset_id: str | None = None
    adset_name: str | None = None
    ad_id: str | None = None
    ad_name: str | None = None


def host_of(url: str | None) -> str | None:
    if not url:
        return None
    try:
        host = urlsplit(url if "//" in url else f"//{url}").hostname
    except ValueError:
        return None
    if not host:
        return None
    host = host.lower()
    return host[4:] if host.startswith("www.") else host


def landing_params(url: str | None, campaign: Mapping[str, str] | None = None) -> dict[str, str]:
    """Query parameters of the landing URL, with the event's campaign (Segment's context.campaign) filling gaps."""
    params: dict[str, str] = {}
    if url and "?" in url:
        try:
            for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=False):
                params.setdefault(k, v)
        except ValueError:
            pass
    for k, v in (campaign or {}).items():
        if v:
            params.setdefault(_CAMPAIGN_ALIASES.get(k, k), str(v))
    return params


def _host_matches(host: str, rule: str) -> bool:
    if rule.endswith("."):  # any TLD: google. matches google.com, www.google.co.uk, news.google.de
        label = rule[:-1]
        parts = host.split(".")
        return label in parts[:-1]
    return host == rule or host.endswith("." + rule)


def source_of_referrer(referrer: str | None, landing_host: str | None = None) -> str:
    host = host_of(referrer)
    if host is None or (landing_host is not None and host == landing_host):
        return DIRECT  # no referrer, or a navigation inside the site itself
    for rule, source in REFERRER_RULES:
        if _host_matches(host, rule):
            return source
    return "referral"


def _platform_of_utm_source(utm_source: str) -> str | None:
    for names, platform in UTM_SOURCE_PLATFORMS:
        if utm_source in names:
            return platform
    return None


def source_of_utm(utm_source: str | None, utm_medium: str | None) -> str | None:
    """The source named by UTM parameters, or None when they name nothing we know."""
    src = (utm_source or "").strip().lower()
    medium = (utm_medium or "").strip().lower()
    if medium in UTM_EMAIL_MEDIUMS:
        return "email"
    if medium in UTM_SMS_MEDIUMS:
        return "sms"
    for names, source in UTM_SOURCE_DIRECT_RULES:
        if src in names:
            return source
    platform = _platform_of_utm_source(src)
    if platform is None:
        return None
    if medium in UTM_PAID_MEDIUMS and f"{platform}_ads" in PAID_SOURCES:
        return f"{platform}_ads"
    return f"{platform}_organic"


def classify(url: str | None, referrer: str | None, campaign: Mapping[str, str] | None = None) -> Classified:
    """Classify a session's entry: click id, then UTM, then referrer host; nothing at all is `direct`."""
    params = landing_params(url, campaign)
    source: str | None = None
    for param, src in CLICK_ID_RULES:
        if params.get(param):
            source = src
            break
    if source is None and ("utm_source" in params or "utm_medium" in params):
        source = source_of_utm(params.get("utm_source"), params.get("utm_medium"))
        if source is None:
            source = "referral"  # tagged, but by a source we do not know: someone else's link
    if source is None:
        source = source_of_referrer(referrer, host_of(url))
    ad = {
        name: next((params[p] for p in names if params.get(p)), None) for name, names in AD_HIERARCHY_PARAMS
    }
    return Classified(source=source, **ad)
