# A stand-in for the part of Vagrant's configuration API a generated Vagrantfile may use.
# `ruby vagrant_stub.rb Vagrantfile` evaluates the Vagrantfile against it and prints, as
# JSON, what it declared: the box, synced folders, ssh settings, and per machine its
# hostname, networks and provider settings. Anything else (a provisioner, a shell call
# through an unknown method) raises, so tests check the Vagrantfile's meaning, not its text.
require 'json'

# Records `x.setting = value` assignments; any other call is an error.
class Settings
  def initialize(hash)
    @hash = hash
  end

  def method_missing(name, *args, &block)
    key = name.to_s
    if key.end_with?('=') && args.length == 1 && block.nil?
      @hash[key.chomp('=')] = args[0]
    else
      super
    end
  end

  def respond_to_missing?(name, include_private = false)
    name.to_s.end_with?('=') || super
  end
end

# config.vm (and machine.vm inside a define block).
class VMRecorder
  def initialize(record, machines)
    @record = record
    @machines = machines
  end

  def box=(value)
    @record['box'] = value
  end

  def hostname=(value)
    @record['hostname'] = value
  end

  def synced_folder(source, destination, **options)
    (@record['synced_folders'] ||= []) << { 'source' => source, 'destination' => destination,
                                            'options' => options.transform_keys(&:to_s) }
  end

  def network(type, **options)
    (@record['networks'] ||= []) << { 'type' => type.to_s, 'options' => options.transform_keys(&:to_s) }
  end

  def provider(name)
    settings = {}
    yield Settings.new(settings)
    (@record['providers'] ||= {})[name.to_s] = settings
  end

  def define(name)
    raise ArgumentError, 'define needs a block' unless block_given?
    raise ArgumentError, "machine #{name} defined twice" if @machines.any? { |m| m['name'] == name.to_s }

    machine = { 'name' => name.to_s }
    @machines << machine
    yield ConfigRecorder.new(machine, @machines)
  end
end

# config (and machine inside a define block).
class ConfigRecorder
  def initialize(record, machines)
    @record = record
    @vm = VMRecorder.new(record, machines)
    @ssh = Settings.new(record['ssh'] ||= {})
  end

  attr_reader :vm, :ssh
end

# Vagrant.configure('2') { |config| ... }
module Vagrant
  RECORD = { 'machines' => [] }

  def self.configure(version)
    RECORD['version'] = version
    yield ConfigRecorder.new(RECORD, RECORD['machines'])
  end
end

load ARGV.fetch(0)
puts JSON.generate(Vagrant::RECORD)
