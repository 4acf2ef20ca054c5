"""Evaluates EventBridge patterns against events with moto's EventBridge implementation.

stdin: {"pattern": {...}, "events": [{...}, ...]}  stdout: {"valid": true, "matches": [bool, ...]}
moto's parser rejects patterns EventBridge would reject (unknown operators, bad shapes).
"""
import json
import sys

from moto.events.models import EventPattern, EventPatternParser

request = json.load(sys.stdin)
pattern_text = json.dumps(request["pattern"])
EventPatternParser(pattern_text).parse()
matcher = EventPattern.load(pattern_text)
print(json.dumps({"valid": True, "matches": [matcher.matches_event(e) for e in request["events"]]}))
