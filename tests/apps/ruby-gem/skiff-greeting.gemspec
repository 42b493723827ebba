Gem::Specification.new do |s|
  s.name = "skiff-greeting"
  s.version = "0.1.0"
  s.summary = "A tiny gem that the Ruby e2e test builds and vendors in vendor/cache"
  s.authors = ["skiff"]
  s.license = "MIT"
  s.files = ["lib/skiff_greeting.rb"]
  s.required_ruby_version = ">= 2.7"
end
